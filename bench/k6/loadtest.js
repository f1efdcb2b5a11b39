// k6 load test for fulcrum (run by bench/loadtest.sh; `make loadtest`).
// Staged load against fulcrum in front of two fastback backends: 16 minutes at LOADTEST_SCALE=1, proportionally
// shorter with a smaller scale (LOADTEST_SCALE=0.02 runs about 20 s). Passes when p95 latency stays under
// 500 ms and fewer than 1% of requests fail; k6 exits non-zero otherwise.
// Keep STAGES in step with the autocannon fallback in bench/loadtest.sh.
import http from 'k6/http';
import { check } from 'k6';

const SCALE = parseFloat(__ENV.LOADTEST_SCALE || '1');
const TARGET = __ENV.TARGET || 'http://127.0.0.1:8080';

// [seconds at scale 1, virtual users at the end of the stage]
const STAGES = [
  [120, 50],   // ramp up
  [180, 50],   // steady
  [120, 200],  // ramp to peak
  [300, 200],  // sustained peak
  [120, 400],  // spike
  [120, 0],    // ramp down
];

export const options = {
  stages: STAGES.map(([s, vus]) => ({ duration: Math.max(1, Math.round(s * SCALE)) + 's', target: vus })),
  thresholds: {
    http_req_duration: ['p(95)<500'],
    http_req_failed: ['rate<0.01'],
  },
  discardResponseBodies: true,
};

const BODY = 'x'.repeat(16384);

// Traffic mix: mostly small responses, some 4 KiB responses, a few 16 KiB uploads.
export default function () {
  const r = Math.random();
  let res;
  if (r < 0.8) {
    res = http.get(`${TARGET}/`);
  } else if (r < 0.95) {
    res = http.get(`${TARGET}/size/4096`);
  } else {
    res = http.post(`${TARGET}/upload`, BODY, { headers: { 'Content-Type': 'application/octet-stream' } });
  }
  check(res, { 'status is 200': (x) => x.status === 200 });
}
