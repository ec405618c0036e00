/**
 * COPY relayed as framed protocol bytes. The source sends one CopyData
 * message per row, and the target takes CopyData messages of any size, so the
 * source's messages can go to the target's socket exactly as they arrived.
 * pg-copy-streams' readers cut every row out of its message and join the rows
 * again (a slice per row, a copy per chunk), and its writer frames each chunk
 * again: on narrow rows that was most of the relay's CPU. Here the reader only
 * steps over the 5-byte headers to find where the copy ends, and hands on
 * runs of whole messages as views of the socket's chunks (a message cut by a
 * chunk's end goes on whole with the next).
 *
 * Both classes extend pg-copy-streams' own (which keep the query protocol,
 * error hand-back, CopyFail and command tags); only the byte handling is
 * replaced. The package is pinned, and the copy tests cover the hooks used.
 */
import { from as copyFrom, to as copyTo, type CopyStreamQuery, type CopyToStreamQuery } from 'pg-copy-streams';

const CopyData = 0x64;
const CopyDone = 0x63;
const CopyOutResponse = 0x48;
const ErrorResponse = 0x45;
// CopyOutResponse, and what may come between CopyData messages (protocol-flow "COPY Operations"): read, not forwarded.
const SKIPPED = new Set([CopyOutResponse, 0x41 /* Notification */, 0x4e /* Notice */, 0x53 /* ParameterStatus */]);

/** What pg-copy-streams' reader keeps that the framed reader uses. */
interface CopyToInternals extends CopyToStreamQuery {
  connection: unknown;
  _buffer: { push(b: Buffer): void; size: number };
  _drained: boolean;
  _detach(): void;
  _cleanup(): void;
  _forward(): void;
}

// pg-copy-streams exports factories only; their classes are the prototypes of what they make.
const CopyToBase = copyTo('').constructor as new (text: string) => CopyToInternals;
const CopyFromBase = copyFrom('').constructor as new (text: string) => CopyStreamQuery & {
  connection: { stream: { write(b: Buffer): boolean } } | null;
};

/**
 * A COPY … TO STDOUT whose chunks are the source's CopyData messages, headers
 * included; only `FramedCopyIn` can take them. `onData` gets each chunk's
 * payload bytes (headers left out), for progress.
 */
export class FramedCopyOut extends CopyToBase {
  /** The first bytes of a header cut by the end of a chunk. */
  private head: Buffer | null = null;
  /** The message being read when a chunk ended: its type, the bytes still to come, and (CopyData) what came so far. */
  private code = 0;
  private left = 0;
  private carry: Buffer[] = [];
  /** Destroyed before the end (the target failed): the rest of the copy is read and dropped. */
  private discarding = false;
  /** pg has the socket back: this stream must not read it again. */
  private handedBack = false;

  constructor(
    text: string,
    private readonly onData: (payloadBytes: number) => void = () => undefined,
  ) {
    super(text);
  }

  /**
   * Called by the base class with each socket chunk; returns false when the
   * consumer wants no more for now, and once pg has the socket back (the base
   * class would otherwise go on reading it). Every chunk pushed holds whole
   * messages: a writer stopped between chunks (on an error) must leave the
   * target's protocol in step for the CopyFail that follows.
   */
  _parse(chunk: Buffer): boolean {
    let drained = true;
    const forward = (b: Buffer, payload: number): void => {
      if (this.discarding) return;
      this.onData(payload);
      drained = this.push(b) && drained;
    };
    let pos = 0;
    // A message begun in an earlier chunk: its header first, then its body.
    if (this.head) {
      const need = 5 - this.head.length;
      if (chunk.length < need) {
        this.head = Buffer.concat([this.head, chunk]);
        return true;
      }
      const header = Buffer.concat([this.head, chunk.subarray(0, need)]);
      this.head = null;
      pos = need;
      const code = header[0]!;
      if (code !== CopyData && !SKIPPED.has(code))
        return this.stop(code, code === CopyDone ? chunk.subarray(pos) : Buffer.concat([header, chunk.subarray(pos)]));
      this.code = code;
      this.left = header.readUInt32BE(1) - 4;
      this.carry = code === CopyData ? [header] : [];
    }
    if (this.left > 0 || this.carry.length > 0) {
      const n = Math.min(this.left, chunk.length - pos);
      if (this.code === CopyData) this.carry.push(chunk.subarray(pos, pos + n));
      pos += n;
      this.left -= n;
      if (this.left > 0) return true;
      if (this.code === CopyData) {
        const message = this.carry.length === 1 ? this.carry[0]! : Buffer.concat(this.carry);
        forward(message, message.length - 5);
      }
      this.carry = [];
    }
    // Whole messages from here: a run of CopyData messages goes on as one view of the chunk.
    let runStart = pos;
    let payload = 0;
    const flush = (end: number): void => {
      if (end > runStart) forward(chunk.subarray(runStart, end), payload);
      payload = 0;
    };
    while (pos < chunk.length) {
      if (chunk.length - pos < 5) {
        flush(pos);
        this.head = Buffer.from(chunk.subarray(pos));
        return drained || this.discarding;
      }
      const code = chunk[pos]!;
      const len = chunk.readUInt32BE(pos + 1) - 4;
      const end = pos + 5 + len;
      if (code === CopyData && end <= chunk.length) {
        payload += len;
        pos = end;
        continue;
      }
      flush(pos);
      if (code !== CopyData && !SKIPPED.has(code))
        return this.stop(code, code === CopyDone ? chunk.subarray(pos + 5) : chunk.subarray(pos));
      if (end > chunk.length) {
        // Cut by the chunk's end: a CopyData message goes on whole with the next chunk, any other is skipped.
        this.code = code;
        this.left = end - chunk.length;
        this.carry = code === CopyData ? [chunk.subarray(pos)] : [];
        return drained || this.discarding;
      }
      pos = end;
      runStart = pos;
    }
    flush(pos);
    return drained || this.discarding;
  }

  /**
   * The end of COPY mode: CopyDone (consumed), an ErrorResponse (pg reports it
   * through handleError), or another message; pg reads `rest` from there.
   */
  private stop(code: number, rest: Buffer): false {
    this._buffer.push(rest);
    this.handedBack = true;
    this._detach();
    if (code === ErrorResponse) return false;
    if (!this.discarding) this.push(null);
    this._cleanup();
    return false;
  }

  override _read(size: number): void {
    if (!this.handedBack) super._read(size);
  }

  /**
   * Destroyed mid-copy (pipeline does so when the target fails): the source
   * keeps sending until its COPY ends, and pg's next query on this session
   * would wait behind that for ever. So the rest is read and dropped, and the
   * session is usable again once the source's COPY is done.
   */
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.connection && !this.handedBack && !this.discarding) {
      this.discarding = true;
      this._drained = true;
      this._forward();
    }
    cb(err);
  }
}

/** A COPY … FROM STDIN that writes `FramedCopyOut`'s chunks to the target's socket as they are. */
export class FramedCopyIn extends CopyFromBase {
  flushChunk(chunk: Buffer): boolean {
    return this.connection!.stream.write(chunk);
  }
}
