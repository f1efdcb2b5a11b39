#!/usr/bin/env node
// sio_server.js: a socket.io server (default options) for fulcrum's integration tests.
// Usage: node sio_server.js --port P --name NAME [--cookie]. Prints "ready PORT". Answers the event "hello"
// with "world" carrying its name and the transport in use.
'use strict';
const http = require('http');
const path = require('path');
const { Server } = require(path.join(__dirname, '..', 'node', 'node_modules', 'socket.io'));
const args = process.argv.slice(2);
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d; };
const name = opt('--name', 'sio');
const server = http.createServer();
// --cookie: the server sets socket.io's own `io` cookie (the sid), for sticky learn mode
const io = new Server(server, args.includes('--cookie') ? { cookie: true } : {});
io.on('connection', (socket) => {
  socket.on('hello', (n, ack) => ack({ from: name, n, transport: socket.conn.transport.name }));
});
server.listen(Number(opt('--port', '0')), '127.0.0.1', () => process.stdout.write(`ready ${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
