/**
 * Response helpers shared by the status endpoints: gzip negotiation (SPEC §6: compressed when
 * the request accepts gzip) and small text replies.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import zlib from 'node:zlib';

/** Does the request's Accept-Encoding allow gzip (a `gzip` or `*` coding with q > 0)? */
export function acceptsGzip(req: IncomingMessage): boolean {
  const header = req.headers['accept-encoding'];
  if (!header) return false;
  for (const item of header.split(',')) {
    const [coding, ...params] = item.trim().toLowerCase().split(';');
    if (coding?.trim() !== 'gzip' && coding?.trim() !== '*') continue;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    if (q === undefined || Number(q.slice(2)) > 0) return true;
  }
  return false;
}

/** Replies with a complete text body (gzip-compressed when accepted). */
export function sendText(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  headers: Record<string, string> = {},
): void {
  let payload = typeof body === 'string' ? Buffer.from(body) : body;
  const out: Record<string, string | number> = { ...headers };
  if (payload.length > 0 && !('content-type' in lower(headers))) out['Content-Type'] = 'text/plain; charset=utf-8';
  if (payload.length > 0 && acceptsGzip(req)) {
    payload = zlib.gzipSync(payload);
    out['Content-Encoding'] = 'gzip';
    out.Vary = 'Accept-Encoding';
  }
  out['Content-Length'] = payload.length;
  res.writeHead(status, out);
  res.end(payload);
}

function lower(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

/**
 * A streaming body: `start` sends the headers, `write` respects backpressure, `end` finishes.
 * With gzip the stream is compressed on the fly (flushed at the end only).
 */
export class StreamingBody {
  private stream: Writable | undefined;
  private readonly gzip: boolean;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {
    this.gzip = acceptsGzip(req);
  }

  start(status: number, headers: Record<string, string>): void {
    const out: Record<string, string> = { ...headers };
    if (this.gzip) {
      out['Content-Encoding'] = 'gzip';
      out.Vary = 'Accept-Encoding';
    }
    this.res.writeHead(status, out);
    if (this.gzip) {
      const gz = zlib.createGzip();
      gz.on('error', (err) => this.res.destroy(err));
      gz.pipe(this.res);
      this.stream = gz;
    } else {
      this.stream = this.res;
    }
  }

  /**
   * Writes the chunks at once; returns a promise only under backpressure (it rejects if the
   * client goes away). The promise settles on the first of: 'drain', the batch's own write
   * callback (the batch has left the buffer, so it is empty), the response closing. Node 24's
   * ServerResponse buffers a corked chunked batch itself: on uncork it may emit 'drain' at once
   * (before anyone listens) or never (when the socket took the batch without needing a drain
   * of its own), so 'drain' alone is not an event that is sure to come.
   */
  write(chunks: Buffer[]): Promise<void> | undefined {
    const stream = this.stream;
    if (!stream) throw new Error('StreamingBody: write before start');
    if (this.res.destroyed) throw new Error('client connection closed');
    const last = lastNonEmpty(chunks);
    if (last < 0) return undefined;
    // One syscall (and, chunked on Node 24, one frame) for the whole batch: cork, write, uncork.
    const batch = last > 0;
    const flushed = new Flushed();
    if (batch) stream.cork();
    let ok = true;
    for (let i = 0; i <= last; i++) {
      const chunk = chunks[i] as Buffer;
      if (chunk.length === 0) continue;
      ok = i === last ? stream.write(chunk, flushed.callback) : stream.write(chunk);
    }
    if (batch) stream.uncork();
    // Decided after uncork: the flush inside it may have drained the buffer already.
    if (ok || !stream.writableNeedDrain || flushed.done) return undefined;
    return writable(stream, this.res, flushed);
  }

  /** Ends the body; resolves when it has been handed to the socket. */
  async end(): Promise<void> {
    const stream = this.stream;
    if (!stream || this.res.destroyed) return;
    stream.end();
    if (!this.res.writableFinished) await Promise.race([once(this.res, 'finish'), once(this.res, 'close')]);
  }
}

function lastNonEmpty(chunks: Buffer[]): number {
  for (let i = chunks.length - 1; i >= 0; i--) if ((chunks[i] as Buffer).length > 0) return i;
  return -1;
}

/** A write callback that remembers it was called (and whether with an error) and wakes one waiter. */
class Flushed {
  done = false;
  private wake: ((err: Error | undefined) => void) | undefined;
  readonly callback = (err?: Error | null): void => {
    this.done = true;
    this.wake?.(err ?? undefined);
  };
  onDone(fn: ((err: Error | undefined) => void) | undefined): void {
    this.wake = fn;
  }
}

/** Waits for 'drain' or the batch's flush, whichever comes first; rejects when the response goes away first. */
function writable(stream: Writable, res: ServerResponse, flushed: Flushed): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      stream.off('drain', onReady);
      res.off('close', onClose);
      flushed.onDone(undefined);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const onClose = () => done(new Error('client connection closed'));
    stream.on('drain', onReady);
    res.on('close', onClose);
    flushed.onDone((err) => done(err ? new Error(`client connection failed: ${err.message}`) : undefined));
    if (res.destroyed) onClose();
  });
}
