/**
 * SecretCatalog: what every SDS resource name resolves to, right now (Istio's
 * `SecretManagerClient.GenerateSecret` dispatch).
 *
 * - `default` / `ROOTCA` come from the workload mode: `ca` (the SecretManager; `pending` until
 *   its first certificate), `mounted` (certificate files, read and watched like file secrets;
 *   no CSR), or `external` (another SDS server owns them: an error on this socket).
 * - `file-root:system` → the first OS bundle that exists; `file-root:<path>`, `file-cert:<c>~<k>`
 *   → those files (FileSecretStore); anything else → an error naming the input and the grammar.
 * `resolve(name)` registers and watches file names on first use and never throws.
 * `onChange` reports names whose served content changed (a new workload certificate: `default`,
 * and `ROOTCA` on the first one or when the root changed; a file re-read: that name).
 */
import type { IssuedCertificate } from '../ca/chain.js';
import type { FileEntry, FileSecretStore } from './file-secrets.js';
import { findSystemRoot } from './file-load.js';
import { ROOT_SECRET, SYSTEM_ROOT_PATHS, WORKLOAD_SECRET, parseSecretName } from './names.js';
import type { SecretResource } from './proto.js';

/** What the catalog needs from the SecretManager. */
export interface WorkloadCertificateSource {
  readonly certificate: IssuedCertificate | undefined;
  onUpdate(listener: (cert: IssuedCertificate, change: { rootChanged: boolean; first: boolean }) => void): () => void;
}

export type WorkloadMode =
  | { kind: 'ca'; manager: WorkloadCertificateSource }
  | { kind: 'mounted'; certPath: string; keyPath: string; rootPath: string; reason: string }
  | { kind: 'external'; socketPath: string };

export type SecretSourceKind = 'ca' | 'file' | 'mounted';

export type SecretState =
  | { kind: 'ready'; resource: SecretResource; source: SecretSourceKind; notAfter: number; serialNumber?: string }
  | { kind: 'pending'; source: SecretSourceKind; why: string }
  | { kind: 'error'; source?: SecretSourceKind; error: string; paths?: string[] };

export interface SecretCatalogOptions {
  workload: WorkloadMode;
  files: FileSecretStore;
  /** OS bundle candidates (default: Istio's list). */
  systemRoots?: readonly string[];
}

export function rootResource(name: string, pem: string): SecretResource {
  return { name, validation_context: { trusted_ca: { inline_bytes: Buffer.from(pem) } } };
}

export function keyPairResource(name: string, chainPem: string, keyPem: string): SecretResource {
  return { name, tls_certificate: { certificate_chain: { inline_bytes: Buffer.from(chainPem) }, private_key: { inline_bytes: Buffer.from(keyPem) } } };
}

function fromEntry(e: FileEntry): SecretState {
  const source = e.source;
  if (e.error !== undefined && !e.loaded) return { kind: 'error', source, error: e.error, paths: e.files };
  if (e.error !== undefined) return { kind: 'error', source, error: e.error, paths: e.files };
  const l = e.loaded;
  if (!l) return { kind: 'pending', source, why: `reading ${e.files.join(' and ')}` };
  if (l.kind === 'root') return { kind: 'ready', source, resource: rootResource(e.name, l.pem), notAfter: l.notAfter };
  return { kind: 'ready', source, resource: keyPairResource(e.name, l.certChainPem, l.privateKeyPem), notAfter: l.notAfter, serialNumber: l.serialNumber };
}

export class SecretCatalog {
  private readonly listeners = new Set<(names: string[]) => void>();
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly o: SecretCatalogOptions) {
    const w = o.workload;
    if (w.kind === 'ca') {
      this.unsubscribe.push(
        w.manager.onUpdate((_c, change) => this.emit(change.rootChanged || change.first ? [WORKLOAD_SECRET, ROOT_SECRET] : [WORKLOAD_SECRET])),
      );
    }
    this.unsubscribe.push(o.files.onChange((name) => this.emit([name])));
    if (w.kind === 'mounted') {
      // Read (and watched) at once: a mounted certificate is a start-up fact, not an on-demand one.
      o.files.ensure(WORKLOAD_SECRET, { kind: 'keypair', certPath: w.certPath, keyPath: w.keyPath }, 'mounted');
      o.files.ensure(ROOT_SECRET, { kind: 'root', path: w.rootPath }, 'mounted');
    }
  }

  get workload(): WorkloadMode {
    return this.o.workload;
  }

  onChange(listener: (names: string[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(names: string[]): void {
    for (const l of [...this.listeners]) l(names);
  }

  resolve(name: string): SecretState {
    const parsed = parseSecretName(name);
    const w = this.o.workload;
    switch (parsed.kind) {
      case 'workload':
      case 'root': {
        if (w.kind === 'external') return { kind: 'error', error: `${name} is served by the external SDS server on ${w.socketPath}; this socket serves file secrets only` };
        if (w.kind === 'mounted') {
          const e = this.o.files.get(name);
          return e ? fromEntry(e) : { kind: 'error', source: 'mounted', error: `${name}: mounted certificate not registered` };
        }
        const cert = w.manager.certificate;
        if (!cert) return { kind: 'pending', source: 'ca', why: 'waiting for the workload certificate' };
        if (parsed.kind === 'root') return { kind: 'ready', source: 'ca', resource: rootResource(name, cert.rootCertPem), notAfter: cert.notAfter };
        return { kind: 'ready', source: 'ca', resource: keyPairResource(name, cert.certChainPem, cert.privateKeyPem), notAfter: cert.notAfter, serialNumber: cert.serialNumber };
      }
      case 'system-root': {
        const existing = this.o.files.get(name);
        if (existing) return fromEntry(existing);
        const candidates = this.o.systemRoots ?? SYSTEM_ROOT_PATHS;
        const found = findSystemRoot(candidates);
        if (!found) return { kind: 'error', source: 'file', error: `${name}: no system trust bundle found (looked for ${candidates.join(', ')})`, paths: [...candidates] };
        return fromEntry(this.o.files.ensure(name, { kind: 'root', path: found }));
      }
      case 'file-root':
        return fromEntry(this.o.files.ensure(name, { kind: 'root', path: parsed.path }));
      case 'file-cert':
        return fromEntry(this.o.files.ensure(name, { kind: 'keypair', certPath: parsed.certPath, keyPath: parsed.keyPath }));
      case 'invalid':
        return { kind: 'error', error: parsed.error };
    }
  }

  close(): void {
    for (const u of this.unsubscribe.splice(0)) u();
    this.listeners.clear();
  }
}
