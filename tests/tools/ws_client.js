#!/usr/bin/env node
// ws_client.js: real `ws` clients against a URL, for fulcrum's integration tests. Prints one JSON
// object with the outcome of the scenario named on the command line.
//   node ws_client.js URL basics     text, binary, 1 MiB, fragmented, ping/pong, both close handshakes
//   node ws_client.js URL many N     N sockets open at once, each echoes one message; then all close
//   node ws_client.js URL idle MS    opens, stays quiet MS ms; reports how and when it was closed
//   node ws_client.js URL refuse     an upgrade the server refuses: the status the client saw
//   node ws_client.js URL park N SECONDS   N sockets open, one echo each, then quiet for SECONDS
//                                    (prints "parked" when all are open, then the result)
//   node ws_client.js URL hold N SECONDS   N sockets echo a message every 200 ms for SECONDS;
//                                    reports sockets still open and echoing at the end
'use strict';
const path = require('path');
const WebSocket = require(path.join(__dirname, '..', 'node', 'node_modules', 'ws'));
const [url, scenario, a1, a2] = process.argv.slice(2);
const out = (o) => { process.stdout.write(JSON.stringify(o) + '\n'); process.exit(0); };
const open = (u) => new Promise((resolve, reject) => {
  const ws = new WebSocket(u || url, { perMessageDeflate: false });
  ws.once('open', () => resolve(ws));
  ws.once('error', reject);
  ws.once('unexpected-response', (req, res) => reject(new Error('status ' + res.statusCode)));
});
const next = (ws) => new Promise((resolve) => ws.once('message', (d, bin) => resolve({ d, bin })));
const timeout = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error('timeout: ' + what)), ms));
const within = (p, ms, what) => Promise.race([p, timeout(ms, what)]);

async function basics() {
  const r = {};
  const ws = await within(open(), 5000, 'open');
  ws.send('hello'); let m = await within(next(ws), 5000, 'text'); r.text = !m.bin && m.d.toString() === 'hello';
  const bin = Buffer.from([0, 1, 2, 255, 254]);
  ws.send(bin); m = await within(next(ws), 5000, 'binary'); r.binary = m.bin && Buffer.compare(m.d, bin) === 0;
  const big = Buffer.alloc(1 << 20); for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 255;
  ws.send(big); m = await within(next(ws), 10000, '1 MiB'); r.mib = m.bin && Buffer.compare(m.d, big) === 0;
  ws.send('frag-', { fin: false }); ws.send('ment-', { fin: false }); ws.send('ed', { fin: true });
  m = await within(next(ws), 5000, 'fragmented'); r.fragmented = m.d.toString() === 'frag-ment-ed';
  r.pong = await within(new Promise((resolve) => { ws.once('pong', (d) => resolve(d.toString() === 'x')); ws.ping('x'); }), 5000, 'pong');
  ws.send('ping-me'); m = await within(next(ws), 5000, 'server ping'); r.server_ping = m.d.toString() === 'pong';
  ws.send('headers'); m = await within(next(ws), 5000, 'headers'); r.headers = JSON.parse(m.d.toString());
  const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  ws.close(1000, 'done'); r.client_close = await within(closed, 5000, 'client close');
  const ws2 = await within(open(), 5000, 'open 2');
  const closed2 = new Promise((resolve) => ws2.once('close', (code, why) => resolve([code, why.toString()])));
  ws2.send('close-me'); r.server_close = await within(closed2, 5000, 'server close');
  out(r);
}

async function many(n) {
  const socks = await within(Promise.all(Array.from({ length: n }, () => open())), 30000, 'open all');
  const answers = await within(Promise.all(socks.map((ws, i) => { const p = next(ws); ws.send('m' + i); return p; })), 30000, 'echo all');
  const ok = answers.filter((m, i) => m.d.toString() === 'm' + i).length;
  await Promise.all(socks.map((ws) => new Promise((resolve) => { ws.once('close', resolve); ws.close(); })));
  out({ opened: socks.length, echoed: ok });
}

async function idle(ms) {
  const ws = await within(open(), 5000, 'open');
  const t0 = Date.now();
  const code = await within(new Promise((resolve) => ws.once('close', (c) => resolve(c))), ms + 10000, 'close');
  out({ code, after_ms: Date.now() - t0 });
}

async function refuse() {
  try { await within(open(), 5000, 'open'); out({ opened: true }); } catch (e) { out({ opened: false, error: e.message }); }
}

async function hold(n, seconds) {
  const socks = await within(Promise.all(Array.from({ length: n }, () => open())), 30000, 'open all');
  let closed = 0, echoes = 0, mismatched = 0;
  socks.forEach((ws, i) => {
    ws.on('close', () => { closed++; });
    let k = 0;
    ws.on('message', (d) => { if (d.toString() === `s${i}-${k}`) echoes++; else mismatched++; k++; });
  });
  const end = Date.now() + seconds * 1000;
  const sent = new Array(n).fill(0);
  while (Date.now() < end) {
    socks.forEach((ws, i) => { if (ws.readyState === WebSocket.OPEN) ws.send(`s${i}-${sent[i]++}`); });
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 500));
  const open_ = socks.filter((ws) => ws.readyState === WebSocket.OPEN).length;
  const total = sent.reduce((a, b) => a + b, 0);
  socks.forEach((ws) => ws.close());
  out({ open: open_, closed, sent: total, echoes, mismatched });
}

async function park(n, seconds) {
  const socks = [];
  for (let i = 0; i < n; i += 100) {
    const batch = await within(Promise.all(Array.from({ length: Math.min(100, n - i) }, () => open())), 30000, 'open');
    await Promise.all(batch.map((ws) => { const p = next(ws); ws.send('x'); return p; }));
    socks.push(...batch);
  }
  process.stdout.write('parked\n');
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const open_ = socks.filter((ws) => ws.readyState === WebSocket.OPEN).length;
  socks.forEach((ws) => ws.close());
  out({ open: open_ });
}

const run = { basics, many: () => many(Number(a1)), idle: () => idle(Number(a1)), refuse, hold: () => hold(Number(a1), Number(a2)), park: () => park(Number(a1), Number(a2)) }[scenario];
run().catch((e) => out({ error: e.message }));
