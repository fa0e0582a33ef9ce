/**
 * The README's generated reference: equal to what scripts/gen-reference.mjs renders from the
 * option tables, and row for row what the real CLI's `--help` prints (flags, types, defaults,
 * docs, env variables). Plus the facts the README states about the image and manifests.
 */
import { describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { extractSections, renderSections } from '../../scripts/gen-reference.mjs';
import { PROXY_ENV, PROXY_FLAGS } from '../../src/config/options.js';
import { IPTABLES_FLAGS } from '../../src/iptables/options.js';
import { REQUEST_FLAGS } from '../../src/commands/request.js';
import { VERSION_FLAGS } from '../../src/commands/version.js';
import { WAIT_FLAGS } from '../../src/commands/wait.js';
import { STATUS_FLAGS } from '../../src/commands/status.js';
import { AGENT_VERSION, ISTIO_COMPAT_VERSION } from '../../src/version.js';
import { runCli } from '../commands/helpers.js';
import { REPO } from './pod.js';

const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
const sections = extractSections(readme);
const REGENERATE = 'README.md is stale: run `npm run build && node scripts/gen-reference.mjs`';

const cell = (s: string) => s.replace(/\|/g, '\\|');
const code = (s: string) => (s.includes('`') ? `\`\` ${s} \`\`` : `\`${s}\``);

interface HelpFlag {
  names: string;
  type: string;
  doc: string;
  def: string | undefined;
}

/** Flag rows of a `--help` text (`  -p, --envoy-port string   doc (default x)`). */
function helpFlags(help: string): HelpFlag[] {
  const out: HelpFlag[] = [];
  for (const line of help.split('\n')) {
    const m = /^ {2}(?:-(\w), | {4})--([\w-]+)(?: (string|int))? {3,}(.*)$/.exec(line);
    if (!m || m[2] === 'help') continue;
    const d = /^(.*) \(default (.*)\)$/.exec(m[4] as string);
    out.push({
      names: `${m[1] ? `\`-${m[1]}\`, ` : ''}\`--${m[2]}\``,
      type: m[3] ?? 'bool',
      doc: d ? (d[1] as string) : (m[4] as string),
      def: d ? d[2] : undefined,
    });
  }
  return out;
}

/** The README row a help flag must have: name | type | default | doc. */
function expectedRow(f: HelpFlag): string {
  const def = f.def !== undefined ? code(f.def) : f.type === 'bool' ? '`false`' : '—';
  return `| ${f.names} | ${f.type} | ${def} | ${cell(f.doc)} |`;
}

function rows(section: string | undefined): string[] {
  return (section ?? '').split('\n').slice(2);
}

describe('README reference', () => {
  test('every generated section equals the rendering of the option tables', () => {
    const expected = renderSections({
      proxyFlags: PROXY_FLAGS,
      proxyEnv: PROXY_ENV,
      iptablesFlags: IPTABLES_FLAGS,
      waitFlags: WAIT_FLAGS,
      requestFlags: REQUEST_FLAGS,
      versionFlags: VERSION_FLAGS,
      statusFlags: STATUS_FLAGS,
    });
    for (const [name, text] of Object.entries(expected)) {
      expect({ section: name, text: sections[name], hint: REGENERATE }).toEqual({ section: name, text, hint: REGENERATE });
    }
    expect(Object.keys(sections).sort()).toEqual(Object.keys(expected).sort());
  });

  test('the proxy flags and environment match `pilot-agent proxy --help`, row for row', async () => {
    const help = await runCli(['proxy', '--help']);
    expect(help.code).toBe(0);
    const flags = helpFlags(help.stdout);
    expect(flags.length).toBeGreaterThan(10);
    expect(rows(sections['proxy-flags'])).toEqual(flags.map(expectedRow));

    const envPart = help.stdout.split('\nEnvironment:\n')[1] ?? '';
    const env = envPart
      .split('\n')
      .map((l) => /^ {2}([A-Z][A-Z0-9_]*) +(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => {
        const d = /^(.*) \(default (.*)\)$/.exec(m[2] as string);
        return { name: m[1] as string, doc: d ? (d[1] as string) : (m[2] as string), def: d?.[2] };
      });
    expect(env.length).toBeGreaterThan(20);
    const readmeEnv = rows(sections['proxy-env']).map((r) => {
      const m = /^\| `([A-Z0-9_]+)` \| \w+ \| (.*?) \| (.*) \|$/.exec(r);
      return { name: m?.[1], def: m?.[2], doc: m?.[3] };
    });
    expect(readmeEnv).toEqual(env.map((e) => ({ name: e.name, def: e.def !== undefined ? code(e.def) : '—', doc: cell(e.doc) })));
  });

  test('the istio-iptables flags match `pilot-agent istio-iptables --help` (with their env variables)', async () => {
    const help = await runCli(['istio-iptables', '--help']);
    expect(help.code).toBe(0);
    const envOf = new Map<string, string[]>();
    for (const m of help.stdout.matchAll(/^ {2}([A-Z][A-Z0-9_]*) +--([\w-]+)$/gm)) {
      envOf.set(m[2] as string, [...(envOf.get(m[2] as string) ?? []), m[1] as string]);
    }
    const expected = helpFlags(help.stdout).map((f) => {
      const long = /--([\w-]+)/.exec(f.names)?.[1] as string;
      const envs = (envOf.get(long) ?? []).map((e) => `\`${e}\``).join(', ') || '—';
      const def = f.def !== undefined ? code(f.def) : f.type === 'bool' ? '`false`' : '—';
      return `| ${f.names} | ${envs} | ${def} | ${cell(f.doc)} |`;
    });
    expect(expected.length).toBeGreaterThan(20);
    expect(rows(sections['iptables-flags'])).toEqual(expected);
  });

  test('wait, request and version flags match their --help', async () => {
    for (const [cmd, section] of [
      ['wait', 'wait-flags'],
      ['request', 'request-flags'],
      ['version', 'version-flags'],
    ] as const) {
      const help = await runCli([cmd, '--help']);
      expect(help.code).toBe(0);
      expect({ cmd, rows: rows(sections[section]) }).toEqual({ cmd, rows: helpFlags(help.stdout).map(expectedRow) });
    }
  });

  test('the README’s image facts: the pinned proxyv2 release, the placeholder image of the manifest', () => {
    expect(readme).toContain(`docker.io/istio/proxyv2:${ISTIO_COMPAT_VERSION}`);
    expect(readme).toContain(`ghcr.io/your-org/pilot-agent-ts:${AGENT_VERSION}`);
    expect(fs.readFileSync(path.join(REPO, 'config/k8s/deployment.yaml'), 'utf8')).toContain(`image: ghcr.io/your-org/pilot-agent-ts:${AGENT_VERSION}`);
    expect(readme).toContain('**placeholder**');
  });
});
