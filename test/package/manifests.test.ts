/**
 * config/k8s: the seed's Deployment with our image (validated against the Kubernetes schema
 * with kubernetes-models, and compared with the seed as injected: only the two images differ;
 * its args/env are the seed contract of test/support/seed.ts), and the Prometheus scrape
 * config for port 15020, whose relabelling a real Prometheus applies to the targets that
 * Kubernetes service discovery makes of this pod (the discovery itself is replaced by static
 * targets carrying the same `__meta_kubernetes_*` labels; this Prometheus build has no
 * Kubernetes discovery, and the test must not reach a cluster).
 */
import { describe, expect, test } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';
import { AGENT_VERSION } from '../../src/version.js';
import { freePort } from '../support/ports.js';
import { SEED_ARGS, SEED_ENV } from '../support/seed.js';
import { container, expandedArgs, loadDeployment, PROMETHEUS_FILE, REPO, resolvedEnv, type Json } from './pod.js';
import { which } from '../support/proc.js';

const IMAGE = `ghcr.io/your-org/pilot-agent-ts:${AGENT_VERSION}`;

const deployment = loadDeployment();
const seed = parseAllDocuments(fs.readFileSync(path.join(REPO, 'test/package/fixtures/seed-deployment.yaml'), 'utf8'))[0]?.toJS() as Json;

describe('config/k8s/deployment.yaml', () => {
  test('is a valid apps/v1 Deployment (Kubernetes schema)', () => {
    expect(() => new Deployment(deployment as never).validate()).not.toThrow();
    // The validator is not a rubber stamp: a wrong type is caught.
    const broken = structuredClone(deployment);
    broken.spec.template.spec.containers[1].ports[0].containerPort = '15090';
    expect(() => new Deployment(broken as never).validate()).toThrow(/containerPort must be integer/);
  });

  test('is the seed pod as injected, with only the istio-proxy and istio-init images swapped for ours', () => {
    const expected = structuredClone(seed);
    for (const c of [...expected.spec.template.spec.containers, ...expected.spec.template.spec.initContainers] as Json[]) {
      if (c.image === 'docker.io/istio/proxyv2:1.6.5') c.image = IMAGE;
    }
    expect(deployment).toEqual(expected);
    expect(container(deployment, 'istio-proxy').image).toBe(IMAGE);
    expect(container(deployment, 'istio-init', true).image).toBe(IMAGE);
    expect(container(deployment, 'nginx').image).toBe('nginx:1.14-alpine');
  });

  test('istio-proxy runs `proxy` with the seed contract’s args and env; istio-init runs istio-iptables', () => {
    const proxy = container(deployment, 'istio-proxy');
    const env = { ...resolvedEnv(proxy), INSTANCE_IP: '10.244.1.7', HOST_IP: '192.168.49.2' };
    expect(expandedArgs(proxy, env)).toEqual(['proxy', ...SEED_ARGS]);
    expect(env).toEqual(SEED_ENV);
    expect(proxy.readinessProbe.httpGet).toEqual({ path: '/healthz/ready', port: 15021 });
    expect(proxy.securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsUser: 1337, runAsGroup: 1337 });
    expect(container(deployment, 'istio-init', true).args.slice(0, 1)).toEqual(['istio-iptables']);
  });
});

/* ------------------------------------------------------------------------------------------- */

const PROMETHEUS = which('prometheus');
const PROMTOOL = which('promtool');
if (!PROMETHEUS) console.log('SKIP relabelling check with a real Prometheus: no `prometheus` binary (apt-get install -y prometheus)');

const scrape = parseYaml(fs.readFileSync(PROMETHEUS_FILE, 'utf8')) as { scrape_configs: Json[] };

/** What Kubernetes discovery (role: pod) yields for the seed pod: one target per container port, or per container without ports. */
function podTargets(podName: string, podIP: string, phase: string): Json[] {
  const pod = deployment.spec.template;
  const hostPort = (ip: string, port?: number) => (port === undefined ? ip : ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
  const common: Record<string, string> = {
    __meta_kubernetes_namespace: 'jiuxi-ns',
    __meta_kubernetes_pod_name: podName,
    __meta_kubernetes_pod_ip: podIP,
    __meta_kubernetes_pod_phase: phase,
    ...Object.fromEntries(Object.entries(pod.metadata.labels as Record<string, string>).map(([k, v]) => [`__meta_kubernetes_pod_label_${k.replace(/[^a-zA-Z0-9_]/g, '_')}`, v])),
  };
  const out: Json[] = [];
  const add = (c: Json, init: boolean) => {
    const base = { ...common, __meta_kubernetes_pod_container_name: c.name, __meta_kubernetes_pod_container_init: String(init) };
    const ports = (c.ports ?? []) as Json[];
    if (ports.length === 0) out.push({ targets: [hostPort(podIP)], labels: base });
    for (const p of ports) {
      out.push({
        targets: [hostPort(podIP, p.containerPort as number)],
        labels: {
          ...base,
          __meta_kubernetes_pod_container_port_name: (p.name as string | undefined) ?? '',
          __meta_kubernetes_pod_container_port_number: String(p.containerPort),
          __meta_kubernetes_pod_container_port_protocol: (p.protocol as string | undefined) ?? 'TCP',
        },
      });
    }
  };
  for (const c of pod.spec.containers as Json[]) add(c, false);
  for (const c of pod.spec.initContainers as Json[]) add(c, true);
  return out;
}

function getJson(port: number, p: string): Promise<Json | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? (JSON.parse(body) as Json) : undefined);
        } catch {
          resolve(undefined);
        }
      });
    });
    req.setTimeout(2000, () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

describe('config/k8s/prometheus-scrape.yaml', () => {
  test('one job: /stats/prometheus over http, Kubernetes pod discovery', () => {
    expect(scrape.scrape_configs).toHaveLength(1);
    const job = scrape.scrape_configs[0] as Json;
    expect(job).toMatchObject({ job_name: 'istio-agent', metrics_path: '/stats/prometheus', scheme: 'http', kubernetes_sd_configs: [{ role: 'pod' }] });
    if (PROMTOOL) {
      const r = spawnSync(PROMTOOL, ['check', 'config', PROMETHEUS_FILE], { encoding: 'utf8' });
      const out = `${r.stdout}${r.stderr}`;
      // Distribution builds may leave Kubernetes discovery out; the next test loads the rest.
      if (r.status !== 0) expect(out).toMatch(/field kubernetes_sd_configs not found/);
    }
  });

  (PROMETHEUS ? test : test.skip)(
    'a real Prometheus relabels the pod’s discovered targets to exactly one per sidecar: <pod IP>:15020 (IPv4 and IPv6)',
    async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prom-relabel-'));
      const port = await freePort();
      const job = structuredClone(scrape.scrape_configs[0] as Json);
      delete job.kubernetes_sd_configs;
      // Loopback pod IPs: Prometheus may scrape them, and must reach nothing else.
      job.static_configs = [...podTargets('jiuxi-v4', '127.0.0.1', 'Running'), ...podTargets('jiuxi-v6', '::1', 'Running'), ...podTargets('jiuxi-pending', '127.0.0.2', 'Pending')];
      job.scrape_interval = '1h';
      job.scrape_timeout = '1s';
      fs.writeFileSync(path.join(dir, 'prometheus.yml'), stringify({ scrape_configs: [job] }));
      const child = spawn(
        PROMETHEUS as string,
        [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let log = '';
      child.stdout.on('data', (d: Buffer) => (log += d.toString()));
      child.stderr.on('data', (d: Buffer) => (log += d.toString()));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try {
        let targets: Json | undefined;
        const deadline = Date.now() + 20_000;
        while (Date.now() < deadline) {
          if (child.exitCode !== null) throw new Error(`prometheus exited: ${log}`);
          targets = (await getJson(port, '/api/v1/targets?state=any'))?.data as Json | undefined;
          if (targets && (targets.activeTargets as Json[]).length + (targets.droppedTargets as Json[]).length > 0) break;
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, 100)))]);
          clearTimeout(timer);
        }
        const active = ((targets?.activeTargets ?? []) as Json[]).map((t) => ({ url: t.scrapeUrl as string, labels: t.labels as Record<string, string> }));
        active.sort((a, b) => (a.url < b.url ? -1 : 1));
        expect(active.map((t) => t.url)).toEqual(['http://127.0.0.1:15020/stats/prometheus', 'http://[::1]:15020/stats/prometheus']);
        expect(active[0]?.labels).toMatchObject({ job: 'istio-agent', namespace: 'jiuxi-ns', pod: 'jiuxi-v4', app: 'jiuxi', security_istio_io_tlsMode: 'istio' });
        expect(active[1]?.labels).toMatchObject({ pod: 'jiuxi-v6', instance: '[::1]:15020' });
        // nginx:80, istio-proxy:15090, istio-init and the pending pod's targets are all dropped.
        expect((targets?.droppedTargets as Json[]).length).toBe(3 * 3 - 2);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
    30_000,
  );
});
