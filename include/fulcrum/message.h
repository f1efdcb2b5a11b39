/* message.h: the rules fulcrum applies to a parsed head before any byte of it is forwarded:
 * which requests and responses it refuses (and with which status), where a request goes (the
 * target and Host it is forwarded with), and how the forwarded message is framed. The framing
 * decided here is the only one used: the forwarded head carries exactly the Content-Length or
 * Transfer-Encoding this view says (headers.c), and the body is read by it (body.c), so the next
 * hop can only see the message fulcrum parsed. Pure: no libuv, no allocation. */
#ifndef FULCRUM_MESSAGE_H
#define FULCRUM_MESSAGE_H

#include <stdint.h>

#include "fulcrum/http.h"

/* How a body is delimited. */
enum fc_framing {
    FC_FRAME_NONE = 0, /* no body (a request without framing headers; HEAD, 1xx, 204, 304 responses) */
    FC_FRAME_LENGTH,   /* Content-Length: exactly `length` bytes (0 included) */
    FC_FRAME_CHUNKED,  /* Transfer-Encoding: chunked */
    FC_FRAME_EOF,      /* responses only: the body ends when the server closes */
};

/* What a request check decided. Slices borrow from the head's buffer (or are literals). */
typedef struct fc_request_view {
    fc_slice_t target;       /* the origin-form target to forward ("/path?query"), or "*"; with
                                target_slash a "/" goes before it ("http://a?q" -> "/?q") */
    fc_slice_t host;         /* the authority to route by and to forward as Host; may be empty */
    uint64_t length;         /* FC_FRAME_LENGTH: the body length (the normalised Content-Length) */
    uint8_t framing;         /* enum fc_framing: NONE, LENGTH or CHUNKED */
    uint8_t host_from_target;/* absolute-form target: the client's Host is replaced by <host> */
    uint8_t target_slash;    /* forward "/" + target (an absolute-form target with an empty path) */
    uint8_t has_host;        /* the request had a Host header (HTTP/1.0 may have none) */
    uint8_t local;           /* answered by fulcrum itself: OPTIONS * or OPTIONS with Max-Forwards: 0 */
    int32_t max_forwards;    /* OPTIONS with Max-Forwards: the value to forward (decremented); -1 none */
    fc_slice_t upgrade;      /* set by the exchange: the protocol to ask the server to switch to
                                (Upgrade + Connection: upgrade are forwarded), {NULL, 0} = none */
    fc_slice_t request_id;   /* set by the exchange: the X-Request-ID to send, replacing the client's
                                fields of that name; {NULL, 0} = forward those as they are */
    const char *why;         /* a constant reason when the check refused the request, for the log */
} fc_request_view_t;

/* Checks request head <h> as parsed by <ll> (method, version, flags, content_length) and fills
 * <v>. Returns 0 when the request may be forwarded (or answered locally when v->local), else the
 * status to answer: 400 (malformed or ambiguous, including a Transfer-Encoding whose final coding
 * is not chunked: RFC 9112 6.3), 405 (CONNECT, TRACE), 501 (a transfer coding fulcrum does not
 * implement before a final chunked, e.g. "gzip, chunked"), 505 (HTTP major version other than 1). */
int fc_msg_check_request(const fc_http_head_t *h, const llhttp_t *ll, fc_request_view_t *v);

/* What a response check decided. */
typedef struct fc_response_view {
    uint64_t length;         /* has_length: the normalised Content-Length value */
    uint8_t framing;         /* enum fc_framing: how the body that follows is delimited */
    uint8_t has_length;      /* a Content-Length to forward (also for HEAD and 304 answers) */
    uint8_t chunked;         /* the server sent Transfer-Encoding: chunked (forwarded for HEAD too) */
    const char *why;         /* a constant reason when the check refused the response */
} fc_response_view_t;

/* Checks response head <h> (a 1xx or a final one) as parsed by <ll>, for a request whose method
 * was HEAD when <req_is_head>. Returns 0, or -1 when the response must not be forwarded: a
 * status outside 100..599, a control byte in the reason phrase, a field name that is not a
 * token, or ambiguous framing (Transfer-Encoding with Content-Length, a coding other than one
 * final chunked, chunked twice, Transfer-Encoding in HTTP/1.0, an invalid Content-Length); the
 * caller answers 502 and closes the server connection. A 1xx or 204 gets FC_FRAME_NONE and no
 * framing fields. */
int fc_msg_check_response(const fc_http_head_t *h, const llhttp_t *ll, int req_is_head, fc_response_view_t *v);

/* The status for a request head llhttp refused (fc_http_execute returned FC_HTTP_ERROR):
 * 431 (too many headers), 501 (a well-formed request line with a method llhttp does not know),
 * 505 (an HTTP version it does not speak), else 400. <data>/<len> is the buffer the head was in. */
int fc_msg_request_error_status(const fc_http_parser_t *p, const char *data, size_t len);

/* 1 if <v> is a valid Host value: uri-host [ ":" port ] with a non-empty decimal port <= 65535,
 * where uri-host is a reg-name, an IPv4 address or a bracketed IPv6 literal (no userinfo, no
 * spaces). An empty value is valid (RFC 9110 7.2). */
int fc_msg_valid_authority(fc_slice_t v);

#endif
