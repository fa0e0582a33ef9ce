/**
 * Writes a downward-API volume exactly as the kubelet's AtomicWriter does: each update goes
 * into a new timestamped directory `..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN`, a `..data_tmp` symlink
 * to it is renamed over `..data`, user-visible symlinks (`labels` → `..data/labels`) are
 * created on first write, and the old directory is removed.
 */
import fs from 'node:fs';
import path from 'node:path';

let counter = 0;

function timestampDir(): string {
  const d = new Date();
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const nanos = String(d.getUTCMilliseconds() * 1_000_000 + (counter++ % 1_000_000)).padStart(9, '0');
  return `..${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}.${nanos}`;
}

export function kubeletWrite(dir: string, files: Record<string, string>): void {
  fs.mkdirSync(dir, { recursive: true });
  const dataLink = path.join(dir, '..data');
  let old: string | undefined;
  try {
    old = fs.readlinkSync(dataLink);
  } catch {
    old = undefined;
  }
  const ts = timestampDir();
  const tsPath = path.join(dir, ts);
  fs.mkdirSync(tsPath, { mode: 0o755 });
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(tsPath, name), content, { mode: 0o644 });
  const tmp = path.join(dir, '..data_tmp');
  fs.symlinkSync(ts, tmp);
  fs.renameSync(tmp, dataLink);
  for (const name of Object.keys(files)) {
    const user = path.join(dir, name);
    if (!fs.existsSync(user)) fs.symlinkSync(path.join('..data', name), user);
  }
  if (old !== undefined && old !== ts) fs.rmSync(path.join(dir, old), { recursive: true, force: true });
}

/** Go %q-style quoting (enough for tests: escapes \ " and control characters). */
export function goQuote(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t')}"`;
}

export function podInfoText(map: Record<string, string>): string {
  return Object.keys(map)
    .sort()
    .map((k) => `${k}=${goQuote(map[k] as string)}`)
    .join('\n');
}
