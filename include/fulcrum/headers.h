/* headers.h: builds the heads fulcrum sends: the request head for a server (hop-by-hop headers
 * removed, X-Forwarded-For appended, X-Real-IP and X-Forwarded-Proto set) and the response head
 * for a client (hop-by-hop removed, framing and Connection chosen for that client). Pure. */
#ifndef FULCRUM_HEADERS_H
#define FULCRUM_HEADERS_H

#include "fulcrum/buf.h"
#include "fulcrum/http.h"
#include "fulcrum/message.h"

/* How fulcrum's own fields are written (from the config; the same for every message). */
typedef struct fc_head_opts {
    fc_slice_t via;            /* the name in the Via entry fulcrum adds ("fulcrum": "Via: 1.1 fulcrum",
                                  the version being the received message's), {NULL, 0}: via: off */
    uint8_t allow_underscores; /* forward request header names with '_' (underscores_in_headers) */
    uint8_t https;             /* the client came over TLS: X-Forwarded-Proto: https */
    fc_slice_t hsts;           /* the whole "Strict-Transport-Security: ...\r\n" line added to every
                                  response (a server's own is replaced), {NULL, 0}: none */
} fc_head_opts_t;

/* 1 if header <name> must not cross the proxy: the fixed hop-by-hop set, or a name listed in a
 * Connection header of <h> (except Content-Length, Transfer-Encoding and Host: a Connection
 * option naming them is ignored, because the framing and the routing of a message are
 * fulcrum's to decide). Framing headers are handled by the callers. */
int fc_headers_is_hop(const fc_http_head_t *h, fc_slice_t name);

/* Appends to <out> the request head for a server: "<method> <v->target> HTTP/1.1", the kept
 * headers (hop-by-hop, Content-Length, Transfer-Encoding and, unless o->allow_underscores, names
 * with '_' removed; Host replaced by v->host for an absolute-form target; Max-Forwards replaced
 * by v->max_forwards), the framing of <v> (Content-Length: N, or Transfer-Encoding: chunked),
 * Host: <host_fallback> when the request had none, X-Forwarded-For/X-Real-IP/X-Forwarded-Proto
 * for <client_ip>, and Via. Returns 0, or -1 when out of memory. */
int fc_headers_build_request(fc_buf_t *out, const fc_http_head_t *h, const fc_request_view_t *v,
                             const char *client_ip, const char *host_fallback, const fc_head_opts_t *o);

enum {
    FC_RESP_CLOSE = 1,      /* add "Connection: close" */
    FC_RESP_KEEPALIVE = 2,  /* add "Connection: keep-alive" (HTTP/1.0 client that asked for it) */
    FC_RESP_DECHUNK = 4,    /* the body is decoded for this client: no Transfer-Encoding */
    FC_RESP_UPGRADE = 8,    /* a 101: the server's Upgrade and "Connection: upgrade" go with it */
};
/* Appends to <out> the response head for a client: the status line, the kept headers
 * (hop-by-hop, Content-Length and Transfer-Encoding removed), the framing of <v> (its
 * Content-Length, or Transfer-Encoding: chunked unless FC_RESP_DECHUNK), Via, Date: <date> when
 * the response had no Date and <date> is not NULL, and the Connection the FC_RESP_* <flags> ask
 * for. <v> NULL (a 1xx) writes no framing. Returns 0, or -1 when out of memory. */
int fc_headers_build_response(fc_buf_t *out, const fc_http_head_t *h, const fc_response_view_t *v, int flags,
                              const char *date, const fc_head_opts_t *o);

/* What a response head gets besides its own fields (rare: compression, a sticky cookie). */
typedef struct fc_resp_edit {
    const char *encoding; /* the body is compressed with this coding: Content-Encoding is added,
                             Content-Length is not sent, and a strong ETag becomes weak (W/"...");
                             NULL = none */
    int vary;             /* add Accept-Encoding to Vary (unless it or "*" is there already) */
    fc_slice_t lines;     /* whole header lines added as they are ("Name: value\r\n"...) */
} fc_resp_edit_t;

/* fc_headers_build_response with the edits of <e> (NULL: none). */
int fc_headers_build_response_edit(fc_buf_t *out, const fc_http_head_t *h, const fc_response_view_t *v, int flags,
                                   const char *date, const fc_head_opts_t *o, const fc_resp_edit_t *e);

#endif
