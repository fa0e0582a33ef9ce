/**
 * The shipped pod manifest (`config/k8s/deployment.yaml`, the seed's Deployment with our
 * image) read the way the kubelet would use it for the istio-proxy container: its args with
 * `$(VAR)` expanded, its env with the downward-API fields filled in, and its mounts classified
 * (emptyDir: writable; downwardAPI/configMap: read-only content).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEPLOYMENT_FILE = path.join(REPO, 'config', 'k8s', 'deployment.yaml');
export const PROMETHEUS_FILE = path.join(REPO, 'config', 'k8s', 'prometheus-scrape.yaml');

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Json = Record<string, any>;

export function loadDeployment(): Json {
  const docs = parseAllDocuments(fs.readFileSync(DEPLOYMENT_FILE, 'utf8'))
    .map((d) => d.toJS() as Json | null)
    .filter((d): d is Json => d !== null);
  if (docs.length !== 1) throw new Error(`${DEPLOYMENT_FILE}: expected one document, found ${docs.length}`);
  return docs[0] as Json;
}

export function container(deployment: Json, name: string, init = false): Json {
  const list = (init ? deployment.spec.template.spec.initContainers : deployment.spec.template.spec.containers) as Json[];
  const c = list.find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
}

/** The downward-API values the kubelet would give a pod jiuxi-7d9c8-abcde in jiuxi-ns. */
export const FIELD_VALUES: Record<string, string> = {
  'metadata.name': 'jiuxi-7d9c8-abcde',
  'metadata.namespace': 'jiuxi-ns',
  'status.podIP': '127.0.0.1',
  'spec.serviceAccountName': 'default',
  'status.hostIP': '127.0.0.1',
  "metadata.labels['service.istio.io/canonical-name']": '',
  "metadata.labels['service.istio.io/canonical-revision']": '',
};

/** The container's env as the kubelet resolves it (literal values, then fieldRefs). */
export function resolvedEnv(c: Json): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env as Json[]) {
    if (e.valueFrom?.fieldRef) {
      const v = FIELD_VALUES[e.valueFrom.fieldRef.fieldPath as string];
      if (v === undefined) throw new Error(`no value for fieldRef ${e.valueFrom.fieldRef.fieldPath}`);
      env[e.name as string] = v;
    } else {
      env[e.name as string] = (e.value as string | undefined) ?? '';
    }
  }
  return env;
}

/** `$(VAR)` in args expands from the container's env, as the kubelet does. */
export function expandedArgs(c: Json, env: Record<string, string>): string[] {
  return (c.args as string[]).map((a) => a.replace(/\$\((\w+)\)/g, (m, name: string) => env[name] ?? m));
}

export interface Mount {
  name: string;
  path: string;
  kind: 'emptyDir' | 'downwardAPI' | 'configMap' | 'other';
  volume: Json;
}

export function mounts(deployment: Json, c: Json): Mount[] {
  const volumes = new Map((deployment.spec.template.spec.volumes as Json[]).map((v) => [v.name as string, v]));
  return (c.volumeMounts as Json[]).map((m) => {
    const v = volumes.get(m.name as string);
    if (!v) throw new Error(`volumeMount ${m.name} has no volume`);
    const kind = v.emptyDir ? 'emptyDir' : v.downwardAPI ? 'downwardAPI' : v.configMap ? 'configMap' : 'other';
    return { name: m.name as string, path: m.mountPath as string, kind, volume: v };
  });
}
