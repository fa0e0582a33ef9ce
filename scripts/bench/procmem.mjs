/**
 * What the memory benchmarks share: a process's memory from /proc, a sampler for peaks, the
 * private-memory budgets (issue 12), and the choice of node runtime (`--node <path>`,
 * `--node-both`).
 *
 * Private memory is what each pod pays on its own: `RssAnon` (/proc/<pid>/status, anonymous
 * resident pages) and `Pss_Anon` (/proc/<pid>/smaps_rollup, the same with pages shared with
 * other processes divided among them). RSS adds the node binary's clean file pages, which every
 * pod running the same image shares through the page cache; it stays reported for comparison
 * with the seed's `ps`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';

const field = (key, text) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);

/** { rss, rssAnon, pssAnon } in KiB; undefined once the process is gone. */
export function readMem(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    return { rss: field('VmRSS', status), rssAnon: field('RssAnon', status), pssAnon: field('Pss_Anon', rollup) };
  } catch {
    return undefined;
  }
}

/** Samples readMem(pid) every `everyMs`; stop() returns the peak of each figure. */
export function sampleMem(pid, everyMs = 10) {
  const peak = readMem(pid) ?? { rss: 0, rssAnon: 0, pssAnon: 0 };
  const timer = setInterval(() => {
    const m = readMem(pid);
    if (!m) return;
    for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], m[k]);
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const last = readMem(pid);
      if (last) for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], last[k]);
      return peak;
    },
  };
}

/** Resident KiB by mapping name ('[anon]' for unnamed), from /proc/<pid>/smaps. */
export function rssByMapping(pid, key = 'Rss') {
  const out = new Map();
  let name = '';
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) name = m[1] || '[anon]';
    else if (line.startsWith(`${key}:`)) out.set(name, (out.get(name) ?? 0) + Number(line.split(/\s+/)[1]));
  }
  return out;
}

/** Private-memory budgets in MiB (issue 12), for RssAnon and Pss_Anon alike. */
export const BUDGETS = { idle: 20, peak: 28, after: 22 };

export const mib = (k) => `${(k / 1024).toFixed(1)} MiB`;

/** One line: RSS, RssAnon, Pss_Anon, and met/missed against `budget` (MiB of private memory). */
export function memLine(label, m, budget) {
  const verdict = budget === undefined ? '' : `  budget private <= ${budget} MiB: ${Math.max(m.rssAnon, m.pssAnon) <= budget * 1024 ? 'met' : 'MISSED'}`;
  return `${label.padEnd(48)} RSS ${mib(m.rss).padStart(9)}  RssAnon ${mib(m.rssAnon).padStart(9)}  Pss_Anon ${mib(m.pssAnon).padStart(9)}${verdict}`;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Node 24's binary, as `npx -y -p node@24 -- which node` installs it. */
export function node24Path() {
  return execFileSync('npx', ['-y', '-p', 'node@24', '--', 'which', 'node'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop();
}

/**
 * Runtime selection for a benchmark script: with `--node <path>` the script re-runs itself under
 * that node, with `--node-both` under this node and then node 24; the re-run's exit status is
 * returned (the caller exits with it). Returns undefined when this process is the run itself
 * (no such option): the runtime is `process.execPath`, which the launcher finds first on PATH.
 */
export function rerunUnderNodes(scriptPath) {
  const argv = process.argv.slice(2);
  const i = argv.indexOf('--node');
  const both = argv.includes('--node-both');
  if (i < 0 && !both) return undefined;
  if (i >= 0 && (argv[i + 1] === undefined || argv[i + 1].startsWith('--'))) {
    throw new Error('--node needs the path of a node binary (e.g. --node /usr/local/bin/node)');
  }
  const rest = argv.filter((a, j) => a !== '--node-both' && !(i >= 0 && (j === i || j === i + 1)));
  const nodes = both ? [process.execPath, node24Path()] : [argv[i + 1]];
  let status = 0;
  for (const node of nodes) {
    if (!fs.existsSync(node)) throw new Error(`--node ${node}: no such file (expected the path of a node binary)`);
    const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    console.log(`\n===== node ${version} (${node}) =====`);
    const r = spawnSync(node, [scriptPath, ...rest], { stdio: 'inherit' });
    status ||= r.status ?? 1;
  }
  return status;
}
