#!/usr/bin/env node
// Regenerates the flag/env reference in README.md from the option tables (the same tables
// that drive parsing and `--help`): PROXY_FLAGS / PROXY_ENV (src/config/options.ts),
// IPTABLES_FLAGS (src/iptables/options.ts) and the small commands' flag tables.
//
//   npm run build && node scripts/gen-reference.mjs          # rewrite README.md in place
//   npm run build && node scripts/gen-reference.mjs --check  # exit 1 if README.md is stale
//
// Generated text lives between `<!-- BEGIN GENERATED: <name> -->` and
// `<!-- END GENERATED: <name> -->`; everything else in the README is hand-written.
// test/package/readme.test.ts fails when the README and the tables disagree.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const cell = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');
const code = (s) => (s.includes('`') ? `\`\` ${s} \`\`` : `\`${s}\``);
const flagName = (f) => `${f.short ? `\`-${f.short}\`, ` : ''}\`--${f.long}\``;
const flagDefault = (f) => (f.defaultText !== undefined && f.defaultText !== '' ? code(f.defaultText) : f.type === 'bool' ? '`false`' : '—');

/** A flag table: name, type, default, description (`--help` rows, without the help flag). */
export function renderFlags(flags) {
  const rows = flags
    .filter((f) => f.long !== 'help')
    .map((f) => `| ${flagName(f)} | ${f.type} | ${flagDefault(f)} | ${cell(f.doc)} |`);
  return ['| flag | type | default | description |', '|---|---|---|---|', ...rows].join('\n');
}

/** The env table of `proxy`: name, type, default, description. */
export function renderEnv(env) {
  const rows = env.map((e) => `| \`${e.name}\` | ${e.type} | ${e.default !== '' ? code(e.default) : '—'} | ${cell(e.doc)} |`);
  return ['| variable | type | default | description |', '|---|---|---|---|', ...rows].join('\n');
}

/** istio-iptables: each flag with the env vars that can set it. */
export function renderIptables(flags) {
  const rows = flags
    .filter((f) => f.long !== 'help')
    .map((f) => {
      const envs = [f.env, ...(f.envAliases ?? [])].filter(Boolean).map((e) => `\`${e}\``);
      return `| ${flagName(f)} | ${envs.length ? envs.join(', ') : '—'} | ${flagDefault(f)} | ${cell(f.doc)} |`;
    });
  return ['| flag | env | default | description |', '|---|---|---|---|', ...rows].join('\n');
}

/** Every generated section by name. `tables` holds the option tables (from dist/ or src/). */
export function renderSections(tables) {
  return {
    'proxy-flags': renderFlags(tables.proxyFlags),
    'proxy-env': renderEnv(tables.proxyEnv),
    'iptables-flags': renderIptables(tables.iptablesFlags),
    'wait-flags': renderFlags(tables.waitFlags),
    'request-flags': renderFlags(tables.requestFlags),
    'version-flags': renderFlags(tables.versionFlags),
    'status-flags': renderFlags(tables.statusFlags),
  };
}

const BLOCK = /<!-- BEGIN GENERATED: ([\w-]+) -->\n([\s\S]*?)<!-- END GENERATED: \1 -->/g;

/** The generated sections currently in a README text, by name (content without the markers). */
export function extractSections(text) {
  const out = {};
  for (const m of text.matchAll(BLOCK)) out[m[1]] = m[2].replace(/\n$/, '');
  return out;
}

/** The README text with every generated section replaced; throws if a section has no markers. */
export function applySections(text, sections) {
  const seen = new Set();
  const next = text.replace(BLOCK, (whole, name) => {
    if (!(name in sections)) return whole;
    seen.add(name);
    return `<!-- BEGIN GENERATED: ${name} -->\n${sections[name]}\n<!-- END GENERATED: ${name} -->`;
  });
  const missing = Object.keys(sections).filter((n) => !seen.has(n));
  if (missing.length) throw new Error(`README.md has no markers for: ${missing.join(', ')}`);
  return next;
}

async function loadTables(root) {
  const dist = (rel) => import(pathToFileURL(path.join(root, 'dist', 'src', rel)).href);
  const options = await dist('config/options.js');
  const iptables = await dist('iptables/options.js');
  const wait = await dist('commands/wait.js');
  const request = await dist('commands/request.js');
  const version = await dist('commands/version.js');
  const status = await dist('commands/status.js');
  return {
    proxyFlags: options.PROXY_FLAGS,
    proxyEnv: options.PROXY_ENV,
    iptablesFlags: iptables.IPTABLES_FLAGS,
    waitFlags: wait.WAIT_FLAGS,
    requestFlags: request.REQUEST_FLAGS,
    versionFlags: version.VERSION_FLAGS,
    statusFlags: status.STATUS_FLAGS,
  };
}

async function cli() {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const readme = path.join(root, 'README.md');
  const text = fs.readFileSync(readme, 'utf8');
  const next = applySections(text, renderSections(await loadTables(root)));
  if (process.argv.includes('--check')) {
    if (next !== text) {
      console.error('README.md is stale: run `npm run build && node scripts/gen-reference.mjs`');
      process.exit(1);
    }
    console.log('README.md reference is current');
    return;
  }
  if (next !== text) fs.writeFileSync(readme, next);
  console.log(next !== text ? 'README.md reference updated' : 'README.md reference already current');
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await cli();
}
