/* test_accesslog.c: the access-log line made from an end-of-exchange record. */
#include <stdio.h>
#include <string.h>

#include "fulcrum/accesslog.h"
#include "fulcrum/config.h"
#include "fulcrum/exchange.h"
#include "harness.h"

void test_accesslog(void);

#define SL(s) ((fc_slice_t){(s), sizeof(s) - 1})

static fc_accesslog_record_t sample(void)
{
    static const char head[] = "GET /a?b HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\nReferer: http://r/\r\nX-Request-ID: abc-1\r\n\r\n";
    fc_accesslog_record_t r;
    memset(&r, 0, sizeof(r));
    r.client = "127.0.0.1";
    r.route = "api";
    r.upstream = "backend";
    r.server = "127.0.0.1:3000";
    r.method = SL("GET");
    r.url = SL("/a?b");
    r.head = SL(head);
    r.status = 200;
    r.bytes_sent = 123;
    r.request_ns = 2500000;
    r.upstream_ns = 1250000;
    r.upstream_header_ns = 1000000;
    r.connect_ns = 750000;
    r.phase = FC_PHASE_DONE;
    return r;
}

void test_accesslog(void)
{
    char line[4096];
    subtest("json");
    fc_accesslog_record_t r = sample();
    size_t n = fc_accesslog_format(line, sizeof(line), &r, FC_LOG_FORMAT_JSON, "2026-12-01T00:00:00.000Z", "x");
    ok(n > 0 && line[n - 1] == '\n');
    line[n] = '\0';
    is_str(line, "{\"time\":\"2026-12-01T00:00:00.000Z\",\"client\":\"127.0.0.1\",\"method\":\"GET\",\"path\":\"/a?b\","
                 "\"status\":200,\"bytes\":123,\"duration_ms\":2.500,\"upstream\":\"127.0.0.1:3000\","
                 "\"upstream_ms\":1.250,\"upstream_header_ms\":1.000,\"route\":\"api\",\"end\":\"-\",\"phase\":\"done\",\"connect_ms\":0.750,\"queue_ms\":0,\"request_id\":\"abc-1\"}\n");

    subtest("combined");
    n = fc_accesslog_format(line, sizeof(line), &r, FC_LOG_FORMAT_COMBINED, "x", "01/Dec/2026:00:00:00 +0000");
    line[n] = '\0';
    is_str(line, "127.0.0.1 - - [01/Dec/2026:00:00:00 +0000] \"GET /a?b HTTP/1.1\" 200 123 \"http://r/\" \"curl/8\" "
                 "0.003 127.0.0.1:3000 0.001 api -/done 0.001 abc-1 0.000\n");

    subtest("a failure names its cause and phase");
    r.cause = FC_END_SERVER_TIMEOUT;
    r.phase = FC_PHASE_HEADERS;
    n = fc_accesslog_format(line, sizeof(line), &r, FC_LOG_FORMAT_JSON, "t", "x");
    line[n] = '\0';
    ok(strstr(line, "\"end\":\"server_timeout\",\"phase\":\"headers\"") != NULL);
    r.cause = FC_END_NONE;
    r.phase = FC_PHASE_DONE;

    subtest("escaped, and no server");
    r.url = SL("/\"q\x01");
    r.server = NULL;
    n = fc_accesslog_format(line, sizeof(line), &r, FC_LOG_FORMAT_JSON, "t", "x");
    line[n] = '\0';
    ok(strstr(line, "\"path\":\"/\\\"q\\u0001\"") != NULL);
    ok(strstr(line, "\"upstream\":\"-\"") != NULL);

    subtest("a line cut short still ends the line");
    n = fc_accesslog_format(line, 40, &r, FC_LOG_FORMAT_JSON, "t", "x");
    is_int(n, 40);
    ok(line[39] == '\n');

    subtest("cause and phase names follow the enums");
    is_str(fc_accesslog_cause_name(FC_END_NONE), "-");
    is_str(fc_accesslog_cause_name(FC_END_SERVER_TIMEOUT), "server_timeout");
    is_str(fc_accesslog_cause_name(FC_END_INTERNAL), "internal");
    is_str(fc_accesslog_cause_name(FC_END_BUSY), "busy");
    is_str(fc_accesslog_cause_name(200), "-");
    is_str(fc_accesslog_phase_name(FC_PHASE_CONNECT), "connect");
    is_str(fc_accesslog_phase_name(FC_PHASE_DONE), "done");
}
