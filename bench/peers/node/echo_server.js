// Node.js `net` echo server: the Node.js peer of samples/echo_server (bench/compare).
//   node echo_server.js [--port PORT]
'use strict';
const net = require('net');

let port = 7000;
const i = process.argv.indexOf('--port');
if (i > 0) port = Number(process.argv[i + 1]);

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.setNoDelay(true);
  socket.on('data', (chunk) => {
    // Respect backpressure: stop reading while the echo is not taken.
    if (!socket.write(chunk)) {
      socket.pause();
      socket.once('drain', () => socket.resume());
    }
  });
  socket.on('error', () => socket.destroy());
});
server.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => {
  console.log(`listening on 127.0.0.1 ${port}`);
});
