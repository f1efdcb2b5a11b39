/* reply.h: fulcrum's own answers (an error, a redirect, OPTIONS *, the health, metrics and status
 * endpoints) and the one table from an end cause to the status it calls for. Pure: it builds
 * bytes; the exchange decides when to send them. */
#ifndef FULCRUM_REPLY_H
#define FULCRUM_REPLY_H

#include <stddef.h>

#include "fulcrum/buf.h"
#include "fulcrum/headers.h"

/* The reason phrase fulcrum writes for <status> ("Error" for one it does not name). */
const char *fc_reply_reason(int status);

/* The status an end cause (enum fc_end_cause, exchange.h) calls for when nothing was sent to the
 * client yet: the one table. */
int fc_reply_cause_status(int cause);

/* The cause an answer of <status> records when no cause was set before it (a request refused by
 * the head checks, which choose the status themselves: 400, 405, 413, 431, 501, 505...). */
int fc_reply_status_cause(int status);

/* Replaces <out> with the whole answer: status line, the header lines <extra> ("Name: value\r\n"
 * each, or ""), Content-Type <ctype>, Content-Length, Date <date>, Connection (keep-alive or
 * close), o's HSTS line, then the <blen>-byte <body> (left out when <head_only>: a HEAD gets the
 * same head; <body> NULL: the caller writes the <blen> bytes itself). Returns 0, or -1 when out of memory. */
int fc_reply_build(fc_buf_t *out, int status, const char *ctype, const char *body, size_t blen, const char *extra,
                   int keepalive, int head_only, const char *date, const fc_head_opts_t *o);

#endif
