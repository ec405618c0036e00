/**
 * `node delay-proxy.js <listen host> <to port> <rtt ms>`: a TCP proxy to
 * 127.0.0.1:<to port> that holds every chunk going to the server for the
 * whole round trip before writing it, in order, and passes the answers
 * straight back. A request and its answer then take one round trip more,
 * as across a link of that round trip (node's timers count in whole
 * milliseconds, so the delay sits on one direction rather than half on each).
 * Prints `listening <port>`; ends on SIGTERM.
 */
import net from 'node:net';

const [host = '127.0.0.1', toPort = '0', rtt = '0'] = process.argv.slice(2);
const delayMs = Number(rtt);

/** Copy `from` to `to`, each chunk `ms` after it arrived, keeping order and back-pressure. */
function delayed(from: net.Socket, to: net.Socket, ms: number): void {
  const queue: { at: number; chunk: Buffer }[] = [];
  let timer: NodeJS.Timeout | null = null;
  let ended = false;
  let waiting = false;
  const write = (chunk: Buffer): void => {
    if (to.write(chunk) || waiting) return;
    waiting = true;
    from.pause();
    to.once('drain', () => {
      waiting = false;
      from.resume();
    });
  };
  const flush = (): void => {
    timer = null;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.at <= now) write(queue.shift()!.chunk);
    if (queue.length > 0) timer = setTimeout(flush, Math.max(1, queue[0]!.at - now));
    else if (ended) to.end();
  };
  from.on('data', (chunk: Buffer) => {
    if (ms <= 0) return write(chunk);
    queue.push({ at: performance.now() + ms, chunk });
    timer ??= setTimeout(flush, ms);
  });
  from.on('end', () => {
    ended = true;
    if (queue.length === 0) to.end();
  });
}

const server = net.createServer((client) => {
  const upstream = net.connect(Number(toPort), '127.0.0.1');
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  const close = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
  client.on('close', () => upstream.end());
  upstream.on('close', () => client.end());
  delayed(client, upstream, delayMs);
  delayed(upstream, client, 0);
});
server.listen(0, host, () => {
  const a = server.address();
  process.stdout.write(`listening ${typeof a === 'object' && a ? a.port : 0}\n`);
});
process.on('SIGTERM', () => process.exit(0));
