/**
 * The seed's istio-init runs with a 50 Mi memory limit. Root only: the built CLI runs the
 * seed's `istio-iptables` args inside a fresh memory cgroup limited to 50 MiB (cgroup v2
 * `memory.max` when /sys/fs/cgroup is v2, else v1 `memory.limit_in_bytes`), in a fresh
 * network namespace. Every process it starts (iptables-restore, iptables-save) is charged
 * to the same cgroup. It must exit 0 with the seed's rules applied and never hit the limit
 * (v1 `memory.failcnt` 0; v2 `memory.events` oom/oom_kill 0). The same for a re-run over
 * the applied rules (the state check's `iptables -C` processes) and for --native-nftables,
 * each in its own fresh cgroup. The peaks are printed.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { REPO_ROOT, SEED_ARGS, seedSaveDump } from './helpers.js';
import { kernelSkipReason, NetnsPair, normalizeSave, onPath, sh, TEST_PATH } from './netns.js';

const LIMIT = 50 * 1024 * 1024;
const CGROUP2_MAGIC = 0x63677270;

interface MemoryCgroup {
  version: 1 | 2;
  dir: string;
  /** Limit hits: v1 failcnt; v2 oom + oom_kill events. */
  failures(): number;
  /** Peak usage in bytes, or undefined when the kernel does not report it. */
  peak(): number | undefined;
}

function cgroupRoot(): { version: 1 | 2; root: string } | string {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (creating a cgroup needs root)';
  try {
    if (statfsSync('/sys/fs/cgroup').type === CGROUP2_MAGIC) {
      const controllers = readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').split(/\s+/);
      return controllers.includes('memory') ? { version: 2, root: '/sys/fs/cgroup' } : 'cgroup v2 without the memory controller';
    }
  } catch (e) {
    return `cannot inspect /sys/fs/cgroup: ${(e as Error).message}`;
  }
  if (existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes')) return { version: 1, root: '/sys/fs/cgroup/memory' };
  return 'no memory cgroup (neither cgroup v2 with memory nor /sys/fs/cgroup/memory)';
}

function createCgroup(version: 1 | 2, root: string): MemoryCgroup {
  const dir = path.join(root, `pa-ipt-mem-${process.pid}-${randomBytes(3).toString('hex')}`);
  mkdirSync(dir);
  const read = (f: string) => readFileSync(path.join(dir, f), 'utf8');
  if (version === 1) {
    writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(LIMIT));
    return {
      version,
      dir,
      failures: () => Number(read('memory.failcnt').trim()),
      peak: () => Number(read('memory.max_usage_in_bytes').trim()),
    };
  }
  if (!readFileSync(path.join(root, 'cgroup.subtree_control'), 'utf8').includes('memory')) {
    writeFileSync(path.join(root, 'cgroup.subtree_control'), '+memory');
  }
  writeFileSync(path.join(dir, 'memory.max'), String(LIMIT));
  return {
    version,
    dir,
    failures: () => {
      const events = Object.fromEntries(read('memory.events').trim().split('\n').map((l) => l.split(' ') as [string, string]));
      return Number(events.oom ?? 0) + Number(events.oom_kill ?? 0);
    },
    peak: () => (existsSync(path.join(dir, 'memory.peak')) ? Number(read('memory.peak').trim()) : undefined),
  };
}

const root = cgroupRoot();
const built = existsSync(path.join(REPO_ROOT, 'dist', 'src', 'cli.js'));
const skipReason = typeof root === 'string' ? root : (kernelSkipReason() ?? (built ? undefined : 'dist/ is not built'));
if (skipReason) console.warn(`iptables memory-cgroup test skipped: ${skipReason}`);

async function removeCgroup(cg: MemoryCgroup): Promise<void> {
  // The last process may still be leaving the cgroup; rmdir succeeds once it is empty.
  for (let i = 0; i < 100; i++) {
    try {
      rmdirSync(cg.dir);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Runs the built CLI with `argv` in the pod namespace of `pair`, inside a fresh 50 MiB cgroup. */
async function runLimited(pair: NetnsPair, argv: readonly string[], label: string) {
  if (typeof root === 'string') throw new Error(root);
  const cg = createCgroup(root.version, root.root);
  try {
    const cli = [process.execPath, path.join(REPO_ROOT, 'bin', 'pilot-agent.js'), ...argv];
    // The shell moves itself into the cgroup, then becomes `ip netns exec … pilot-agent`.
    const script = `echo $$ > "$1/cgroup.procs" && shift && exec "$@"`;
    const r = await sh('sh', ['-c', script, 'sh', cg.dir, 'ip', 'netns', 'exec', pair.pod, ...cli], { PATH: TEST_PATH });
    const peak = cg.peak();
    const failures = cg.failures();
    console.log(
      `${label} in a ${LIMIT / 1048576} MiB cgroup v${cg.version}: exit ${r.code}, ` +
        `peak ${peak === undefined ? 'not reported' : `${(peak / 1048576).toFixed(1)} MiB`}, limit hits ${failures}`,
    );
    return { ...r, peak, failures };
  } finally {
    await removeCgroup(cg);
  }
}

(skipReason ? describe.skip : describe)('istio-iptables inside a 50 MiB memory cgroup', () => {
  let pair: NetnsPair;

  beforeAll(async () => {
    pair = await NetnsPair.create(4);
  });

  afterAll(async () => {
    await pair?.destroy();
  });

  test('the seed\'s args exit 0 with the seed\'s rules applied and never hit the limit', async () => {
    const r = await runLimited(pair, ['istio-iptables', ...SEED_ARGS], 'istio-iptables (seed args)');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.failures).toBe(0);
    expect(await pair.save()).toBe(normalizeSave(seedSaveDump()));
    // The process really ran in this cgroup: it was charged for it.
    if (r.peak !== undefined) expect(r.peak).toBeGreaterThan(1024 * 1024);
  });

  test('a re-run over the applied rules (every rule checked with iptables -C) stays inside the limit too', async () => {
    const r = await runLimited(pair, ['istio-iptables', ...SEED_ARGS], 'istio-iptables (seed args, re-run)');
    expect(r.code).toBe(0);
    expect(r.failures).toBe(0);
    expect(r.stderr).toContain('every capture rule is already in place');
    expect(await pair.save()).toBe(normalizeSave(seedSaveDump()));
  });

  (onPath('nft') ? test : test.skip)('--native-nftables with the seed\'s args stays inside the limit', async () => {
    const r = await runLimited(pair, ['istio-iptables', ...SEED_ARGS, '--native-nftables'], 'istio-iptables --native-nftables (seed args)');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.failures).toBe(0);
    expect((await pair.exec(pair.pod, 'nft', ['list', 'tables'])).stdout).toContain('table inet istio-proxy-nat');
  });
});
