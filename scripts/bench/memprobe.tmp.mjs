import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { AGENT_ARGS, CLI, LAUNCHER_NODE_FLAGS, agentEnv } from './agent.mjs';
const AGENT_ARGV = [CLI, ...AGENT_ARGS];
const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-memprobe-'));
const { env, ports: { status } } = await agentEnv();
const extraArgs = (process.env.NODEFLAGS ?? '').split(' ').filter(Boolean);
const child = spawn(process.execPath, [...LAUNCHER_NODE_FLAGS, ...extraArgs, ...AGENT_ARGV], { cwd, env: { ...env, ...(process.env.XENV ? JSON.parse(process.env.XENV) : {}) }, stdio: ['ignore', 'ignore', 'pipe'] });
let err = ''; child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
const get = () => new Promise((resolve) => { const req = http.get({ host: '127.0.0.1', port: status, path: '/healthz/ready' }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); }); req.on('error', () => resolve(0)); });
for (let i = 0; i < 400; i++) { if ((await get()) === 200) break; await new Promise((r) => setTimeout(r, 25)); }
const rollup = () => { const s = fs.readFileSync(`/proc/${child.pid}/smaps_rollup`, 'utf8'); const g = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)[1]) / 1024; return `Rss ${g('Rss').toFixed(1)} Anon ${g('Anonymous').toFixed(1)} File ${(g('Rss') - g('Anonymous')).toFixed(1)}`; };
console.log('ready', rollup());
for (const t of [2, 10]) { await new Promise((r) => setTimeout(r, t === 2 ? 2000 : 8000)); console.log(`+${t}s`, rollup()); }
// per-mapping breakdown
const sm = fs.readFileSync(`/proc/${child.pid}/smaps`, 'utf8').split('\n');
const agg = new Map(); let cur = '';
for (const l of sm) { const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(l); if (m) { cur = m[1] || '[anon]'; continue; } const r = /^Rss:\s+(\d+)/.exec(l); if (r) agg.set(cur, (agg.get(cur) ?? 0) + Number(r[1])); }
if (process.env.MAPS) console.log(require_maps(child.pid));
console.log([...agg].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, v]) => `${(v / 1024).toFixed(1)} ${k}`).join('\n'));
console.log('threads', fs.readdirSync(`/proc/${child.pid}/task`).length);
child.kill('SIGTERM'); await new Promise((r) => child.once('exit', r));
function require_maps(pid) { let name = '', perm = '', range = ''; const out = []; for (const l of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) { const m = /^([0-9a-f]+-[0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(l); if (m) { [, range, perm, name] = m; continue; } const r = /^Rss:\s+(\d+)/.exec(l); if (r && /node$/.test(name)) out.push(`${range} ${perm} ${(Number(r[1]) / 1024).toFixed(1)}`); } return out.join('\n'); }
