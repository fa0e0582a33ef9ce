/**
 * A private network namespace for tests that need a non-loopback peer: a veth pair with both
 * ends inside the namespace (the host's interfaces are never touched), `addresses[i]` on end
 * i (`/24`). `runScript` runs a Node script inside it and resolves with its stdout. Needs root:
 * `skipReason` says why the namespace could not be made (not root, no `ip`, …), and the suite
 * then skips with that printed reason. `dispose()` deletes the namespace and the scratch dir.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface VethNamespace {
  readonly name: string;
  readonly skipReason: string | undefined;
  runScript(source: string, timeoutMs?: number): Promise<string>;
  dispose(): void;
}

export function vethNamespace(prefix: string, addresses: readonly [string, ...string[]]): VethNamespace {
  const name = `${prefix}-${process.pid}`;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
  let created = false;
  let dir: string | undefined;
  const firstLine = (err: unknown) => (err as Error).message.split('\n')[0];
  const skipReason = ((): string | undefined => {
    if (process.getuid?.() !== 0) return 'not running as root (needs a private network namespace)';
    try {
      ip('netns', 'add', name);
      created = true;
    } catch (err) {
      return `cannot create a network namespace: ${firstLine(err)}`;
    }
    try {
      ip('-n', name, 'link', 'set', 'lo', 'up');
      ip('-n', name, 'link', 'add', 'vt0', 'type', 'veth', 'peer', 'name', 'vt1');
      addresses.forEach((addr, i) => ip('-n', name, 'addr', 'add', `${addr}/24`, 'dev', `vt${i}`));
      ip('-n', name, 'link', 'set', 'vt0', 'up');
      ip('-n', name, 'link', 'set', 'vt1', 'up');
      return undefined;
    } catch (err) {
      return `cannot configure the namespace: ${firstLine(err)}`;
    }
  })();
  return {
    name,
    skipReason,
    runScript(source, timeoutMs = 20_000) {
      dir ??= fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
      const script = path.join(dir, `run-${Date.now()}.mjs`);
      fs.writeFileSync(script, source);
      return new Promise<string>((resolve, reject) =>
        execFile('ip', ['netns', 'exec', name, process.execPath, script], { timeout: timeoutMs }, (err, stdout, stderr) =>
          err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
        ),
      );
    },
    dispose() {
      if (created) {
        try {
          ip('netns', 'del', name);
        } catch {
          // already gone
        }
        created = false;
      }
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
