#!/usr/bin/env node
// sio_client.js: N socket.io clients with the default transports (long-polling first, then the
// upgrade to WebSocket), cookies kept as a browser would (withCredentials), each exchanging a few
// events. Prints {connected, exchanged, upgraded, servers} as JSON.
'use strict';
const path = require('path');
const { io } = require(path.join(__dirname, '..', 'node', 'node_modules', 'socket.io-client'));
const [url, nstr] = process.argv.slice(2);
const n = Number(nstr || 10);
const one = () => new Promise((resolve) => {
  const s = io(url, { withCredentials: true, reconnection: false, timeout: 4000, forceNew: true });
  let done = false;
  const finish = (r) => { if (!done) { done = true; s.close(); resolve(r); } };
  setTimeout(() => finish({ connected: s.connected, exchanged: 0 }), 8000);
  s.on('connect_error', (e) => finish({ connected: false, exchanged: 0, error: e.message }));
  s.on('disconnect', (why) => finish({ connected: false, exchanged: 0, error: 'disconnect: ' + why }));
  s.on('connect', async () => {
    let exchanged = 0, from = null, transport = null;
    for (let k = 0; k < 3; k++) {
      const r = await new Promise((res) => s.timeout(3000).emit('hello', k, (err, ans) => res(err ? null : ans)));
      if (r && r.n === k) { exchanged++; from = r.from; transport = r.transport; }
      await new Promise((res) => setTimeout(res, 300));
    }
    finish({ connected: true, exchanged, from, transport });
  });
});
Promise.all(Array.from({ length: n }, one)).then((rs) => {
  process.stdout.write(JSON.stringify({
    connected: rs.filter((r) => r.connected && r.exchanged === 3).length,
    upgraded: rs.filter((r) => r.transport === 'websocket').length,
    servers: [...new Set(rs.map((r) => r.from).filter(Boolean))].sort(),
    errors: rs.map((r) => r.error).filter(Boolean).slice(0, 3),
  }) + '\n');
  process.exit(0);
});
