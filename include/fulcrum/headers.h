/* headers.h: builds the heads fulcrum sends: the request head for a server (hop-by-hop headers
 * removed, X-Forwarded-For appended, X-Real-IP and X-Forwarded-Proto set) and the response head
 * for a client (hop-by-hop removed, framing and Connection chosen for that client). Pure. */
#ifndef FULCRUM_HEADERS_H
#define FULCRUM_HEADERS_H

#include "fulcrum/buf.h"
#include "fulcrum/http.h"

/* 1 if header <name> must not cross the proxy: the fixed hop-by-hop set, or a name listed in a
 * Connection header of <h>. Transfer-Encoding is not in the set: callers decide framing. */
int fc_headers_is_hop(const fc_http_head_t *h, fc_slice_t name);

/* Appends to <out> the request head for a server: "<method> <target> HTTP/1.1", the kept
 * headers, X-Forwarded-For/X-Real-IP/X-Forwarded-Proto for <client_ip>, and Host: <host_fallback>
 * when the request had none. <target> replaces h->url (used for absolute-form requests).
 * Returns 0, or -1 when out of memory. */
int fc_headers_build_request(fc_buf_t *out, const fc_http_head_t *h, fc_slice_t target, const char *client_ip,
                             const char *host_fallback);

enum {
    FC_RESP_CLOSE = 1,      /* add "Connection: close" */
    FC_RESP_KEEPALIVE = 2,  /* add "Connection: keep-alive" (HTTP/1.0 client that asked for it) */
    FC_RESP_DECHUNK = 4,    /* drop Transfer-Encoding (the body is being decoded) */
};
/* Appends to <out> the response head for a client with the given FC_RESP_* <flags>.
 * Returns 0, or -1 when out of memory. */
int fc_headers_build_response(fc_buf_t *out, const fc_http_head_t *h, int flags);

#endif
