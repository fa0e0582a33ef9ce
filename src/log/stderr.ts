/**
 * The agent's default log destination: whole lines to fd 2, synchronously, so every line is out
 * before an immediate `process.exit` and lines from the agent and from Envoy's forwarded stderr
 * (src/envoy/process.ts writes them through `process.stderr`) never interleave mid-line.
 *
 * - A line goes out with `fs.writeSync` in a loop until all of it is written. On a non-blocking
 *   pipe (Node makes fd 2 one once `process.stderr` exists) a full pipe answers EAGAIN: the loop
 *   waits (Atomics.wait, 1 → 50 ms) and retries, so a slow reader slows the agent instead of
 *   crashing it. No progress for STALL_LIMIT_MS drops the rest of the line (the next line
 *   starts on a fresh one); any other error (EPIPE, EBADF) drops the line silently.
 * - When fd 2 is a pipe or socket and `process.stderr` still holds bytes it could not write
 *   (libuv writes what fits and queues the rest, tearing a line > PIPE_BUF), the line is queued
 *   behind them on `process.stderr` instead (in order, never torn, but no longer synchronous:
 *   an immediate `process.exit` loses them), up to QUEUE_LIMIT bytes; beyond that lines are
 *   dropped until the queue drains.
 * - Dropped lines are counted; the next line that goes out is preceded by `notice(count)`.
 */
import fs from 'node:fs';
import type { LogDestination } from '../log.js';

const STALL_LIMIT_MS = 10_000;
const QUEUE_LIMIT = 1 << 20;

export function stderrDestination(notice: (dropped: number) => string): LogDestination {
  let shared = false;
  try {
    const st = fs.fstatSync(2);
    shared = st.isFIFO() || st.isSocket();
  } catch {
    // fd 2 closed: every write below fails and drops its line.
  }
  let sleeper: Int32Array | undefined;
  let torn = false;
  let dropped = 0;
  return {
    write(record: string): void {
      const line = `${torn ? '\n' : ''}${dropped > 0 ? notice(dropped) : ''}${record}`;
      if (shared) {
        const stream = process.stderr;
        if (stream.writableLength > 0) {
          if (stream.writableLength >= QUEUE_LIMIT) dropped++;
          else {
            stream.write(line);
            torn = false;
            dropped = 0;
          }
          return;
        }
      }
      let buf = Buffer.from(line, 'utf8');
      const total = buf.length;
      const before = dropped;
      torn = false;
      dropped = 0;
      let waitMs = 1;
      let stalledSince = 0;
      while (buf.length > 0) {
        try {
          buf = buf.subarray(fs.writeSync(2, buf));
          waitMs = 1;
          stalledSince = 0;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
          const now = Date.now();
          if (stalledSince === 0) stalledSince = now;
          else if (now - stalledSince >= STALL_LIMIT_MS) {
            torn = buf.length < total;
            if (!torn) dropped = before + 1;
            return;
          }
          sleeper ??= new Int32Array(new SharedArrayBuffer(4));
          Atomics.wait(sleeper, 0, 0, waitMs);
          waitMs = Math.min(waitMs * 2, 50);
        }
      }
    },
  };
}
