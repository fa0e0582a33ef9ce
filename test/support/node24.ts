/**
 * Node 24 (the image's runtime) for tests that must run code under it: the node binary of
 * `npx -y -p node@24`, found once per test file. CI reaches the npm registry; where it cannot be
 * obtained the caller skips with `reason` printed.
 */
import { spawnSync } from 'node:child_process';

export type Node24 = { path: string; version: string } | { path: undefined; reason: string };

let cached: Node24 | undefined;

/** Resolves Node 24 through npx (up to 3 minutes on a cold cache). */
export function findNode24(): Node24 {
  if (cached) return cached;
  const which = spawnSync('npx', ['-y', '-p', 'node@24', '--', 'which', 'node'], { encoding: 'utf8', timeout: 180_000 });
  const path = which.stdout?.trim().split('\n').pop() ?? '';
  if (which.status !== 0 || path === '') {
    cached = { path: undefined, reason: `npx -y -p node@24 -- which node failed (${which.error?.message ?? `exit ${which.status}`}): ${which.stderr?.trim().slice(-300) ?? ''}` };
    return cached;
  }
  const v = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  const version = v.stdout?.trim() ?? '';
  cached = /^v24\./.test(version) ? { path, version } : { path: undefined, reason: `${path} --version printed ${JSON.stringify(version)}, expected v24.x` };
  return cached;
}
