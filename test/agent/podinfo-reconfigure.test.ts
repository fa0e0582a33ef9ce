import { afterEach, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentNode } from '../../src/agent/node.js';
import { podInfoReaction, startPodInfoReconfigure, type PodInfoTargets } from '../../src/agent/podinfo-reconfigure.js';
import { createLogger } from '../../src/log.js';
import { POD_INTERFACES, seedConfig } from '../support/config.js';
import { SEED_ANNOTATIONS, SEED_LABELS } from '../support/seed.js';

function harness(over: Partial<PodInfoTargets> = {}) {
  const config = seedConfig();
  const node = new AgentNode(config, POD_INTERFACES);
  const lines: string[] = [];
  const calls: string[] = [];
  const log = createLogger({ outputLevel: 'default:info', destination: { write: (l: string) => void lines.push(l) } });
  const targets: PodInfoTargets = {
    node,
    log,
    envoyRunning: () => true,
    writeBootstrap: () => void calls.push(`write ${JSON.stringify(node.identity.metadata.LABELS)}`),
    resetEnvoyStream: (reason) => void calls.push(`reset: ${reason}`),
    restartForNewBootstrap: (reason) => void calls.push(`restart: ${reason}`),
    ...over,
  };
  return { config, node, lines, calls, targets };
}

describe('podinfo reaction (SPEC §8)', () => {
  test('new labels reach the node metadata, then the bootstrap, the xDS stream and the supervisor, in that order', () => {
    const h = harness();
    const before = h.node.identity;
    const labels = { ...h.config.pod.labels, version: 'v2' };
    podInfoReaction(h.targets)({ labels, annotations: h.config.pod.annotations });
    expect((h.node.identity.metadata.LABELS as Record<string, string>).version).toBe('v2');
    // Only LABELS/ANNOTATIONS change: the rest is the identity computed at start.
    expect(h.node.identity.id).toBe(before.id);
    expect(h.node.identity.metadata.NAME).toBe(before.metadata.NAME);
    expect(h.calls).toEqual([expect.stringMatching(/^write .*"version":"v2"/), 'reset: podinfo changed', 'restart: podinfo changed']);
  });

  test('no running Envoy: the bootstrap is left for the next start to write; standalone: no xDS stream to reset', () => {
    const h = harness({ envoyRunning: () => false, resetEnvoyStream: undefined });
    podInfoReaction(h.targets)({ labels: { app: 'x' }, annotations: {} });
    expect(h.calls).toEqual(['restart: podinfo changed']);
    expect(h.node.identity.metadata.LABELS).toMatchObject({ app: 'x' });
  });

  test('a config-bearing annotation change warns that it applies at the next start', () => {
    const h = harness();
    const annotations = { ...h.config.pod.annotations, 'status.sidecar.istio.io/port': '15999' };
    podInfoReaction(h.targets)({ labels: h.config.pod.labels, annotations });
    expect(h.lines.join('')).toContain('annotation status.sidecar.istio.io/port changed: takes effect on the next container start');
    expect(h.node.annotations['status.sidecar.istio.io/port']).toBe('15999');
    // A second identical change does not warn again.
    h.lines.length = 0;
    podInfoReaction(h.targets)({ labels: h.config.pod.labels, annotations });
    expect(h.lines.join('')).not.toContain('changed: takes effect');
  });

  test('a bootstrap that cannot be rewritten warns; the stream reset and the restart still happen', () => {
    const h = harness({
      writeBootstrap: () => {
        throw new Error('configPath /x: cannot write the Envoy bootstrap: EROFS');
      },
    });
    podInfoReaction(h.targets)({ labels: { app: 'y' }, annotations: {} });
    expect(h.lines.join('')).toContain('podinfo change: could not rewrite the bootstrap: configPath /x: cannot write the Envoy bootstrap: EROFS');
    expect(h.calls).toEqual(['reset: podinfo changed', 'restart: podinfo changed']);
  });
});

describe('startPodInfoReconfigure (real directory watch)', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  test('a labels file change reaches the targets; after disposal no change does', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-podinfo-'));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'labels'), SEED_LABELS);
    fs.writeFileSync(path.join(dir, 'annotations'), SEED_ANNOTATIONS);
    const h = harness();
    const watcher = await startPodInfoReconfigure({
      ...h.targets,
      dir,
      initial: { labels: h.config.pod.labels, annotations: h.config.pod.annotations },
      debounceMs: 20,
    });
    fs.writeFileSync(path.join(dir, 'labels'), `${SEED_LABELS}\nversion="v3"`);
    const deadline = Date.now() + 10_000;
    while (!h.calls.includes('restart: podinfo changed')) {
      if (Date.now() > deadline) throw new Error(`no reaction within 10s; calls: ${JSON.stringify(h.calls)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect((h.node.identity.metadata.LABELS as Record<string, string>).version).toBe('v3');
    await watcher[Symbol.asyncDispose]();
    const seen = h.calls.length;
    fs.writeFileSync(path.join(dir, 'labels'), `${SEED_LABELS}\nversion="v4"`);
    // The watcher is closed: give a would-be reaction several debounce periods, then check none came.
    await new Promise((r) => setTimeout(r, 200));
    expect(h.calls).toHaveLength(seen);
    expect((h.node.identity.metadata.LABELS as Record<string, string>).version).toBe('v3');
  });
});
