/**
 * OUTPUT_CERTS (Istio's `OutputKeyCertToDir`): every `default` served — CA-issued or rotated, or
 * read from mounted files (as Istio, which writes whatever `default` it generated) — is also
 * written to `<dir>/key.pem`, `<dir>/cert-chain.pem` and `<dir>/root-cert.pem`. Each file is
 * written to a temporary name in the same directory and renamed over the target (a reader
 * never sees a partial file); the key is mode 0600, the certificates 0644 (Istio: all 0600, or all 0644 — the key
 * included — when running in Kubernetes; the issue asks for a 0600 key); the directory is
 * created (0755) if missing. These files are never read back as a source (when the directory
 * is also the mounted-certificate directory, the mount is ignored: see mode.ts). A write that
 * fails is logged and retried on the next certificate; it never stops the agent.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { IssuedCertificate } from '../ca/chain.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';

export const OUTPUT_KEY = 'key.pem';
export const OUTPUT_CHAIN = 'cert-chain.pem';
export const OUTPUT_ROOT = 'root-cert.pem';

function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  try {
    fs.writeFileSync(tmp, text, { mode });
    fs.chmodSync(tmp, mode);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

export type OutputCertificate = Pick<IssuedCertificate, 'certChainPem' | 'privateKeyPem' | 'rootCertPem' | 'serialNumber'>;

/** Writes the three files; returns false (after logging) when it could not. */
export function writeOutputCerts(dir: string, cert: OutputCertificate, log: Logger): boolean {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    // The key first: a reader that sees the new chain also finds its key.
    writeAtomic(path.join(dir, OUTPUT_KEY), cert.privateKeyPem, 0o600);
    writeAtomic(path.join(dir, OUTPUT_CHAIN), cert.certChainPem, 0o644);
    writeAtomic(path.join(dir, OUTPUT_ROOT), cert.rootCertPem, 0o644);
  } catch (err) {
    log.error(`OUTPUT_CERTS: cannot write the workload certificate (serial ${cert.serialNumber}) to ${dir}: ${describeError(err)}`);
    return false;
  }
  log.info(`OUTPUT_CERTS: wrote the workload certificate (serial ${cert.serialNumber}) to ${dir}`);
  return true;
}
