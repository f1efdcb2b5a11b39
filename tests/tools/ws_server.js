#!/usr/bin/env node
// ws_server.js: a WebSocket and raw-upgrade origin for fulcrum's integration tests, on the real
// `ws` package (tests/node). Usage: node ws_server.js --port P [--name NAME]. Prints "ready PORT".
//   WebSocket on any path: echoes each message as it came (text or binary, fragments joined by
//   ws); "close-me" -> closes with code 4000; "ping-me" -> sends a ping, and "pong" once the pong
//   came; "who" -> the server's name; "headers" -> the upgrade request's headers as JSON.
//   GET /refuse with Upgrade: websocket -> 400 (the upgrade refused; the connection stays HTTP).
//   Upgrade: x-echo -> a raw 101 then an echo of bytes; after the client's FIN, waits 300 ms,
//   writes "bye" and ends (the last bytes after a half-close must still arrive).
//   Any plain HTTP request -> 200 "plain NAME PATH" (426 for an upgrade the server did not get).
'use strict';
const http = require('http');
const path = require('path');
const { WebSocketServer } = require(path.join(__dirname, '..', 'node', 'node_modules', 'ws'));

const args = process.argv.slice(2);
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d; };
const name = opt('--name', 'ws');
const wss = new WebSocketServer({ noServer: true, maxPayload: 64 << 20 });
let upgrades = 0;

const server = http.createServer((req, res) => {
  if (req.url === '/stats') {
    res.end(JSON.stringify({ upgrades, open: wss.clients.size }));
    return;
  }
  const body = `plain ${name} ${req.url} upgrade=${req.headers.upgrade || '-'}\n`;
  res.writeHead(req.headers.upgrade ? 426 : 200, { 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
});

server.on('upgrade', (req, socket, head) => {
  upgrades++;
  const proto = (req.headers.upgrade || '').toLowerCase();
  if (req.url.startsWith('/refuse')) {
    socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 8\r\nConnection: keep-alive\r\n\r\nrefused\n');
    return;
  }
  if (proto === 'x-echo') {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-echo\r\nConnection: Upgrade\r\n\r\n');
    if (head.length) socket.write(head);
    socket.on('data', (d) => socket.write(d));
    socket.on('end', () => setTimeout(() => socket.end('bye'), 300));
    socket.on('error', () => {});
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? null : data.toString();
      if (text === 'close-me') ws.close(4000, 'asked');
      else if (text === 'who') ws.send(name);
      else if (text === 'headers') ws.send(JSON.stringify(req.headers));
      else if (text === 'ping-me') { ws.once('pong', () => ws.send('pong')); ws.ping('p'); }
      else ws.send(data, { binary: isBinary });
    });
    ws.on('error', () => {});
  });
});

server.keepAliveTimeout = 60000;
server.listen(Number(opt('--port', '0')), opt('--host', '127.0.0.1'), () => {
  process.stdout.write(`ready ${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
