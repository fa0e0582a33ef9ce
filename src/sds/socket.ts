/**
 * Preparing and cleaning up a unix socket path for a gRPC server (SdsServer): the directory is
 * created, a stale socket removed, a path that is not a socket or where another server answers
 * refused; every failure is an AgentError `SDS_LISTEN_FAILED` naming the path and the cause.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { AgentError, describeError } from '../errors.js';
import type { Logger } from '../log.js';

/** Longest unix socket path Linux accepts (sun_path is 108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH_BYTES = 107;

export function listenError(socketPath: string, why: string, cause?: unknown): AgentError {
  return new AgentError('SDS_LISTEN_FAILED', `cannot serve SDS on ${socketPath}: ${why}`, cause === undefined ? {} : { cause });
}

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? describeError(err);
}

/** Directory present and writable, no live server on the path, stale socket removed. */
export async function prepareSocket(socketPath: string, log: Logger): Promise<void> {
  const bytes = Buffer.byteLength(socketPath);
  if (bytes > MAX_SOCKET_PATH_BYTES) throw listenError(socketPath, `the path is ${bytes} bytes long; a unix socket path can have at most ${MAX_SOCKET_PATH_BYTES}`);
  const dir = path.dirname(socketPath);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    const code = errno(err);
    const blocker = code === 'EEXIST' || code === 'ENOTDIR' ? nonDirectoryAncestor(dir) : undefined;
    throw listenError(socketPath, `cannot create the directory ${dir} (${blocker ? `${blocker} is not a directory` : code})`, err);
  }
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    throw listenError(socketPath, `the directory ${dir} is not writable (${errno(err)})`, err);
  }
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw listenError(socketPath, `cannot inspect the path (${errno(err)})`, err);
  }
  if (!st) return;
  if (!st.isSocket()) throw listenError(socketPath, 'the path exists and is not a socket');
  if (await answers(socketPath)) throw listenError(socketPath, 'another process is already serving on this socket');
  try {
    fs.unlinkSync(socketPath);
  } catch (err) {
    throw listenError(socketPath, `cannot remove the stale socket (${errno(err)})`, err);
  }
  log.info(`removed the stale SDS socket ${socketPath}`);
}

/** The closest existing ancestor of `dir` (or itself), when it is not a directory. */
function nonDirectoryAncestor(dir: string): string | undefined {
  for (let p = dir; ; p = path.dirname(p)) {
    try {
      return fs.statSync(p).isDirectory() ? undefined : p;
    } catch {
      if (path.dirname(p) === p) return undefined;
    }
  }
}

export function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: socketPath });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export function removeSocket(socketPath: string): void {
  try {
    if (fs.lstatSync(socketPath).isSocket()) fs.unlinkSync(socketPath);
  } catch {
    // already gone
  }
}
