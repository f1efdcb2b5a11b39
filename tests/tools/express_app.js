// express_app.js: a real Express app for the compression tests, with no `compression` middleware
// (fulcrum compresses at the edge instead).   node express_app.js ROOT   (ROOT: the repository)
// Prints "ready PORT" once listening on 127.0.0.1 (any free port). Routes:
//   /page    an HTML page of ~200 KB (res.send: Content-Length and a weak ETag)
//   /api     a JSON document of ~64 KB (res.json)
//   /small   100 bytes of text/plain (below min_length)
//   /png     20 KB of image/png (a type not in the list)
//   /stream  text/plain written in 20 pieces with res.write, 20 ms apart (chunked)
'use strict';
const path = require('path');
const express = require(path.join(process.argv[2], 'tests', 'node', 'node_modules', 'express'));

function text(n, seed) {
  const words = ['fulcrum', 'express', 'edge', 'gzip', 'brotli', 'zstd', 'node', 'route', 'json', 'html'];
  let x = seed, out = '';
  while (out.length < n) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out += words[x % words.length] + ((x >> 8) % 7 === 0 ? '\n' : ' ');
  }
  return out.slice(0, n);
}

const page = '<!doctype html><html><body><pre>' + text(200000, 1) + '</pre></body></html>\n';
const api = { items: [] };
for (let i = 0; api.items.length < 800; i++) api.items.push({ id: i, name: text(40, i + 7), tags: text(20, i + 99).split(' ') });
const png = Buffer.alloc(20000);
for (let i = 0; i < png.length; i++) png[i] = (i * 7919) % 251;

const app = express();
app.get('/page', (req, res) => res.type('html').send(page));
app.get('/api', (req, res) => res.json(api));
app.get('/small', (req, res) => res.type('text/plain').send(text(100, 3)));
app.get('/png', (req, res) => res.type('png').send(png));
app.get('/stream', (req, res) => {
  res.type('text/plain');
  let i = 0;
  const next = () => {
    if (i === 20) return res.end();
    res.write(text(5000, 1000 + i++));
    setTimeout(next, 20);
  };
  next();
});
const server = app.listen(0, '127.0.0.1', () => console.log('ready ' + server.address().port));
