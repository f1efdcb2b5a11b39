-- wrk script for bench/run.sh: optional POST body (BENCH_POST_BYTES) and a machine-readable summary line.
-- The request is still built once (wrk.format at init), so the script costs wrk nothing per request.
local post = tonumber(os.getenv("BENCH_POST_BYTES") or "0")
if post > 0 then
    wrk.method = "POST"
    wrk.body = string.rep("p", post)
    wrk.headers["Content-Type"] = "application/octet-stream"
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCHJSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"connect_errors\":%d,\"read_errors\":%d," ..
        "\"write_errors\":%d,\"status_errors\":%d,\"timeouts\":%d,\"p50_us\":%d,\"p99_us\":%d,\"mean_us\":%.1f," ..
        "\"max_us\":%d}\n",
        summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
