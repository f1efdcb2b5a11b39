-- wrk script for bench/run.sh: optional POST body (BENCH_POST_BYTES), optionally sent with Transfer-Encoding:
-- chunked in chunks of BENCH_POST_CHUNK bytes, and a machine-readable summary line.
-- The request is still built once (wrk.format at init), so the script costs wrk nothing per request.
local post = tonumber(os.getenv("BENCH_POST_BYTES") or "0")
local chunk = tonumber(os.getenv("BENCH_POST_CHUNK") or "0")
if post > 0 then
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/octet-stream"
    if chunk > 0 then
        -- wrk.format adds Content-Length whenever wrk.body is set, so the body stays nil and the framed body is
        -- appended to the head that wrk.init formats once. No global request(): wrk keeps the request static.
        local parts, left = {}, post
        while left > 0 do
            local n = math.min(chunk, left)
            parts[#parts + 1] = string.format("%x\r\n", n) .. string.rep("p", n) .. "\r\n"
            left = left - n
        end
        parts[#parts + 1] = "0\r\n\r\n"
        local framed = table.concat(parts)
        wrk.headers["Transfer-Encoding"] = "chunked"
        local format = wrk.format
        wrk.format = function(method, path, headers, body)
            return format(method, path, headers, nil) .. framed
        end
    else
        wrk.body = string.rep("p", post)
    end
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
