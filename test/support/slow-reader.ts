/**
 * A GET that reads its body like a busy scraper: it pauses briefly now and then, so the
 * server meets backpressure. Fails when no byte arrives for `stallMs` (a stalled server),
 * never on total time.
 */
import http from 'node:http';

export interface SlowRead {
  status: number;
  bytes: number;
  /** The whole body when `keep` was set, else only its last 4 KiB. */
  body: Buffer;
}

export function slowGet(port: number, path: string, o: { keep?: boolean; stallMs?: number; pauseEvery?: number; headers?: Record<string, string> } = {}): Promise<SlowRead> {
  const stallMs = o.stallMs ?? 15_000;
  const pauseEvery = o.pauseEvery ?? 16;
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: o.headers ?? {} }, (res) => {
      const kept: Buffer[] = [];
      let tail = Buffer.alloc(0);
      let bytes = 0;
      let n = 0;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          res.destroy();
          reject(new Error(`GET ${path}: no data for ${stallMs} ms after ${bytes} bytes (status ${res.statusCode})`));
        }, stallMs);
      };
      arm();
      res.on('data', (c: Buffer) => {
        arm();
        bytes += c.length;
        if (o.keep) kept.push(c);
        else tail = Buffer.concat([tail, c]).subarray(-4096);
        if (++n % pauseEvery === 0) {
          res.pause();
          setTimeout(() => res.resume(), 2);
        }
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, bytes, body: o.keep ? Buffer.concat(kept) : tail });
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`GET ${path}: body failed after ${bytes} bytes: ${err.message}`));
      });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
