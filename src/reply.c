/* reply.c: fulcrum's own answers and the cause -> status table (see reply.h). */
#include "fulcrum/reply.h"

#include <stdio.h>
#include <string.h>

#include "fulcrum/exchange.h"

const char *fc_reply_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

int fc_reply_cause_status(int cause)
{
    switch (cause) {
    case FC_END_CLIENT_TIMEOUT: return 408;
    case FC_END_CLIENT_BAD: return 400;
    case FC_END_LIMIT: return 413;
    case FC_END_NO_ROUTE: return 404;
    case FC_END_SERVER_TIMEOUT: return 504;
    case FC_END_LOCAL: return 503;
    case FC_END_BUSY: return 503;
    case FC_END_INTERNAL: return 500;
    default: return 502;
    }
}

int fc_reply_status_cause(int status)
{
    return status == 404                     ? FC_END_NO_ROUTE
           : status == 408                   ? FC_END_CLIENT_TIMEOUT
           : status == 413 || status == 431  ? FC_END_LIMIT
           : status == 503                   ? FC_END_LOCAL
           : status >= 500 && status != 501 && status != 505 ? FC_END_INTERNAL
                                             : FC_END_CLIENT_BAD;
}

int fc_reply_build(fc_buf_t *out, int status, const char *ctype, const char *body, size_t blen, const char *extra,
                   int keepalive, int head_only, const char *date, const fc_head_opts_t *o)
{
    char buf[384];
    int n = snprintf(buf, sizeof(buf), "Content-Type: %s\r\nContent-Length: %zu\r\nDate: %s\r\nConnection: %s\r\n%.*s\r\n",
                     ctype, blen, date, keepalive ? "keep-alive" : "close", (int)o->hsts.n, o->hsts.n ? o->hsts.p : "");
    char line[64];
    int ln = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, fc_reply_reason(status));
    out->len = 0;
    if (n < 0 || (size_t)n >= sizeof(buf) || fc_buf_append(out, line, (size_t)ln) != 0 ||
        fc_buf_append(out, extra, strlen(extra)) != 0 || fc_buf_append(out, buf, (size_t)n) != 0 ||
        (!head_only && body != NULL && fc_buf_append(out, body, blen) != 0))
        return -1;
    return 0;
}
