/**
 * The Dockerfile, checked without a Docker engine: pinned bases (Node 24 for the build,
 * istio/proxyv2 of ISTIO_COMPAT_VERSION for the runtime), every COPY source present (build
 * context files allowed by .dockerignore; build-stage outputs present after `npm run build`),
 * the layout the agent resolves its template from, the passwd assertion, ENTRYPOINT, WORKDIR.
 */
import { describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ISTIO_COMPAT_VERSION } from '../../src/version.js';
import { copies, dockerignoreAllows, parseDockerfile, workdirOf, type Stage } from './dockerfile.js';
import { REPO } from './pod.js';

const dockerfile = parseDockerfile(fs.readFileSync(path.join(REPO, 'Dockerfile'), 'utf8'));
const dockerignore = fs.readFileSync(path.join(REPO, '.dockerignore'), 'utf8').split('\n');
const stage = (name: string): Stage => {
  const s = dockerfile.stages.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
};
const runtime = dockerfile.stages.at(-1) as Stage;
const runs = (s: Stage) => s.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.raw);

describe('Dockerfile', () => {
  test('bases: Node 24 (Debian, glibc) for build and runtime binary; istio/proxyv2 pinned to ISTIO_COMPAT_VERSION', () => {
    expect(dockerfile.globalArgs.get('ISTIO_VERSION')).toBe(ISTIO_COMPAT_VERSION);
    expect(dockerfile.globalArgs.get('NODE_VERSION')).toMatch(/^24(\.|$)/);
    expect(stage('node').from).toMatch(/^docker\.io\/library\/node:24[\w.-]*-(bookworm|trixie)-slim$/);
    expect(stage('build').from).toBe('node');
    expect(stage('prod-deps').from).toBe('node');
    expect(runtime.from).toBe(`docker.io/istio/proxyv2:${ISTIO_COMPAT_VERSION}`);
  });

  test('build stage: npm ci, then npm run build; production stage: npm ci --omit=dev (install scripts off in both)', () => {
    expect(runs(stage('build'))).toEqual(['npm ci --ignore-scripts --no-audit --no-fund', 'npm run build']);
    expect(runs(stage('prod-deps'))).toEqual(['npm ci --omit=dev --ignore-scripts --no-audit --no-fund']);
    // `npm run build` is this script (tsc over tsconfig.build.json), whose inputs the stage copies.
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.build).toBe('tsc -p tsconfig.build.json');
    const buildSources = copies(stage('build')).map((c) => c.from);
    expect(buildSources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src']));
  });

  test('every COPY source exists: context files (and .dockerignore lets them through), build outputs after npm run build', () => {
    const checked: string[] = [];
    for (const s of dockerfile.stages) {
      for (const c of copies(s)) {
        if (c.stage === undefined) {
          expect({ line: c.line, path: c.from, exists: fs.existsSync(path.join(REPO, c.from)) }).toEqual({ line: c.line, path: c.from, exists: true });
          expect({ line: c.line, path: c.from, allowed: dockerignoreAllows(dockerignore, c.from) }).toEqual({ line: c.line, path: c.from, allowed: true });
          checked.push(c.from);
          continue;
        }
        const from = dockerfile.stages.find((x) => x.name === c.stage);
        if (!from || from.instructions.length === 0) {
          expect(c.from).toBe('/usr/local/bin/node'); // the runtime binary of the node image
          continue;
        }
        const rel = path.posix.relative(workdirOf(from), c.from);
        if (c.stage === 'prod-deps') {
          expect(rel).toBe('node_modules');
          continue;
        }
        expect({ line: c.line, path: rel, exists: fs.existsSync(path.join(REPO, rel)) }).toEqual({ line: c.line, path: rel, exists: true });
        checked.push(rel);
      }
    }
    expect(checked).toEqual(expect.arrayContaining(['dist/src', 'bin/pilot-agent.js', 'config/envoy_bootstrap.json', 'package.json']));
    expect(fs.existsSync(path.join(REPO, 'dist/src/cli.js'))).toBe(true);
  });

  test('.dockerignore keeps node_modules, dist, tests and git out of the context', () => {
    for (const p of ['node_modules/undici/package.json', 'dist/src/cli.js', 'test/support/seed.ts', '.git/HEAD', 'README.md', 'config/k8s/deployment.yaml', 'src/cli.ts']) {
      expect({ p, allowed: dockerignoreAllows(dockerignore, p) }).toEqual({ p, allowed: p === 'src/cli.ts' });
    }
  });

  test('runtime layout: one package root holding package.json, bin/, dist/src, node_modules and the built-in template', () => {
    const dest = new Map(copies(runtime).map((c) => [c.from, c.to]));
    const root = path.posix.dirname(dest.get('package.json') as string);
    expect(root).toBe('/usr/local/lib/pilot-agent');
    // src/paths.ts: the template is <package root>/config/envoy_bootstrap.json.
    expect(dest.get('config/envoy_bootstrap.json')).toBe(`${root}/config/envoy_bootstrap.json`);
    expect(dest.get('bin/pilot-agent.js')).toBe(`${root}/bin/pilot-agent.js`);
    expect(dest.get('/app/dist/src')).toBe(`${root}/dist/src`);
    expect(dest.get('/app/node_modules')).toBe(`${root}/node_modules`);
    expect(dest.get('/usr/local/bin/node')).toBe('/usr/local/bin/node');
  });

  test('ENTRYPOINT /usr/local/bin/pilot-agent (a symlink to the launcher), WORKDIR /', () => {
    const entry = runtime.instructions.filter((i) => i.keyword === 'ENTRYPOINT');
    expect(entry.map((i) => i.args)).toEqual([['/usr/local/bin/pilot-agent']]);
    expect(workdirOf(runtime)).toBe('/');
    expect(runs(runtime).join('\n')).toContain('ln -sf ../lib/pilot-agent/bin/pilot-agent.js /usr/local/bin/pilot-agent');
    // The launcher finds node on PATH (with its memory flags: `env -S` splits them).
    expect(fs.readFileSync(path.join(REPO, 'bin/pilot-agent.js'), 'utf8').split('\n')[0]).toMatch(/^#!\/usr\/bin\/env -S node( --[a-z-]+(=\S+)?)*$/);
  });

  test('the build asserts user istio-proxy with uid/gid 1337 (the RUN’s own grep, against sample passwd files)', () => {
    const run = runs(runtime).join('\n');
    const m = /grep -Eq '([^']+)' \/etc\/passwd/.exec(run);
    expect(m).not.toBeNull();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passwd-'));
    try {
      const grep = (content: string) => {
        const f = path.join(dir, 'passwd');
        fs.writeFileSync(f, content);
        try {
          execFileSync('grep', ['-Eq', m?.[1] as string, f]);
          return true;
        } catch {
          return false;
        }
      };
      const base = 'root:x:0:0:root:/root:/bin/bash\n';
      expect(grep(`${base}istio-proxy:x:1337:1337::/home/istio-proxy:/bin/sh\n`)).toBe(true);
      expect(grep(`${base}istio-proxy:x:1337:1000::/home/istio-proxy:/bin/sh\n`)).toBe(false);
      expect(grep(`${base}istio-proxy:x:13370:1337::/home/istio-proxy:/bin/sh\n`)).toBe(false);
      expect(grep(`${base}proxy:x:1337:1337::/:/bin/sh\n`)).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(run).toContain('test -x /usr/local/bin/envoy');
    expect(run).toContain('pilot-agent version');
  });
});
