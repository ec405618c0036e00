import assert from 'node:assert/strict';
import { FramedCopyOut } from '../../engine/copy/relay';

const msg = (code: string, body: Buffer | string = ''): Buffer => {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const h = Buffer.alloc(5);
  h[0] = code.charCodeAt(0);
  h.writeUInt32BE(b.length + 4, 1);
  return Buffer.concat([h, b]);
};

interface Seen {
  readonly forwarded: Buffer;
  readonly payload: number;
  readonly handedBack: Buffer;
  readonly ended: boolean;
  readonly detached: number;
  /** Destroyed, it kept asking for the socket's bytes until its COPY ended. */
  readonly readOnAfterDestroy: boolean;
}

/** Feed `chunks` to a FramedCopyOut as the socket would (destroying it after chunk `destroyAfter`), and see what it forwards and hands back to pg. */
async function feed(chunks: readonly Buffer[], destroyAfter = -1): Promise<Seen> {
  let payload = 0;
  const r = new FramedCopyOut('COPY t TO STDOUT', (n) => (payload += n));
  const internals = r as unknown as {
    _parse(b: Buffer): boolean;
    _detach(): void;
    _cleanup(): void;
    _buffer: { take(n: number): Buffer; size: number };
  };
  let detached = 0;
  let handedBack: Buffer = Buffer.alloc(0);
  internals._detach = () => {
    detached++;
    handedBack = internals._buffer.take(internals._buffer.size);
  };
  internals._cleanup = () => undefined;
  let ended = false;
  r.on('end', () => (ended = true));
  const out: Buffer[] = [];
  r.on('data', (b: Buffer) => {
    // Whole messages in every chunk: the writer may be stopped between any two.
    let p = 0;
    while (p < b.length) p += 1 + b.readUInt32BE(p + 1);
    assert.equal(p, b.length, 'a chunk ends on a message boundary');
    out.push(b);
  });
  // _forward reads the socket while _parse returns true: the fake socket has nothing more, the chunks come from here.
  (r as unknown as { connection: unknown }).connection = { stream: { read: () => null } };
  r.on('error', () => undefined);
  let readOnAfterDestroy = true;
  chunks.forEach((c, i) => {
    // After the hand-back pg's own handler reads the socket again.
    if (detached) handedBack = Buffer.concat([handedBack, c]);
    else if (!internals._parse(c) && i > destroyAfter && destroyAfter >= 0 && !detached) readOnAfterDestroy = false;
    if (i === destroyAfter) r.destroy(new Error('the target failed'));
  });
  await new Promise((resolve) => setImmediate(resolve));
  return { forwarded: Buffer.concat(out), payload, handedBack, ended, detached, readOnAfterDestroy };
}

/** Every way to cut `bytes` into three chunks (two cuts, empty chunks allowed). */
function* cuts(bytes: Buffer): Generator<Buffer[]> {
  for (let i = 0; i <= bytes.length; i++)
    for (let j = i; j <= bytes.length; j += 3) yield [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)];
}

describe('COPY relayed as framed messages (engine/copy/relay.ts)', function () {
  const rows = [msg('d', 'one\t1\n'), msg('d', ''), msg('d', Buffer.alloc(300, 7)), msg('d', 'x')];
  const pgsRest = Buffer.concat([msg('C', 'COPY 4\0'), msg('Z', 'T')]);

  it('forwards exactly the CopyData messages, headers included, wherever the chunks are cut; hands the rest back to pg', async function () {
    const stream = Buffer.concat([
      msg('H', Buffer.from([1, 0, 1, 0, 1])),
      rows[0]!,
      rows[1]!,
      msg('N', 'SNOTICE\0Mhello\0\0'),
      rows[2]!,
      msg('S', 'TimeZone\0UTC\0'),
      rows[3]!,
      msg('c'),
      pgsRest,
    ]);
    const want = Buffer.concat(rows);
    let n = 0;
    for (const chunks of cuts(stream)) {
      const seen = await feed(chunks);
      const where = `cut at ${chunks[0]!.length}/${chunks[0]!.length + chunks[1]!.length}`;
      assert.deepEqual(seen.forwarded, want, where);
      assert.equal(seen.payload, 6 + 0 + 300 + 1, where);
      assert.deepEqual(seen.handedBack, pgsRest, where);
      assert.equal(seen.detached, 1, where);
      assert.ok(seen.ended, where);
      n++;
    }
    assert.ok(n > 1000);
  });

  it('stops at an ErrorResponse and hands it to pg from its first byte, without ending the stream', async function () {
    const error = Buffer.concat([msg('E', 'SERROR\0C22012\0Mdivision by zero\0\0'), msg('Z', 'E')]);
    const stream = Buffer.concat([msg('H', Buffer.from([0, 0, 0])), rows[0]!, rows[2]!, error]);
    for (const chunks of cuts(stream)) {
      const seen = await feed(chunks);
      const where = `cut at ${chunks[0]!.length}/${chunks[0]!.length + chunks[1]!.length}`;
      assert.deepEqual(seen.forwarded, Buffer.concat([rows[0]!, rows[2]!]), where);
      assert.deepEqual(seen.handedBack, error, where);
      assert.equal(seen.ended, false, where);
    }
  });

  it('destroyed mid-copy (the target failed): reads the rest to its end and drops it, so the session is usable again', async function () {
    const sent = [rows[0]!, rows[2]!, rows[3]!];
    const stream = Buffer.concat([msg('H', Buffer.from([0, 0, 0])), ...sent, msg('c'), pgsRest]);
    const done = stream.length - pgsRest.length - 5;
    for (let i = 1; i < done; i += 7) {
      const seen = await feed([stream.subarray(0, i), stream.subarray(i, done), stream.subarray(done)], 0);
      assert.deepEqual(seen.handedBack, pgsRest, `destroyed after ${i} bytes`);
      assert.equal(seen.detached, 1);
      assert.ok(seen.readOnAfterDestroy, `destroyed after ${i} bytes, it stopped reading before its COPY's end`);
      assert.ok(
        Buffer.concat(sent).subarray(0, seen.forwarded.length).equals(seen.forwarded),
        `only what came before: ${seen.forwarded.toString('hex')}`,
      );
    }
  });
});
