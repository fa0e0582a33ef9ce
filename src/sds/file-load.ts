/**
 * Reading secrets from files (Istio's `generateRootCertFromExistingFile` and
 * `generateKeyCertFromExistingFiles`). Each loader reads by path, now, and either returns the
 * content to serve or throws an Error whose message names the path and what is wrong:
 * missing, a directory, empty, no PEM certificate that parses, an unreadable key, or a key
 * that does not match the leaf certificate. A bundle with some unparsable certificates among
 * valid ones serves the valid ones (as Istio does) and reports the others as `warnings`.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import { splitPemCertificates } from '../ca/pem.js';

export interface LoadedRoot {
  kind: 'root';
  /** The certificates that parsed, concatenated. */
  pem: string;
  /** Earliest notAfter among them (ms epoch). */
  notAfter: number;
  warnings: string[];
}

export interface LoadedKeyPair {
  kind: 'keypair';
  certChainPem: string;
  privateKeyPem: string;
  serialNumber: string;
  identities: string[];
  notBefore: number;
  notAfter: number;
  warnings: string[];
}

export type LoadedSecret = LoadedRoot | LoadedKeyPair;

function readText(file: string, what: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`${what} ${file}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if (st.isDirectory()) throw new Error(`${what} ${file}: is a directory, expected a PEM file`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${what} ${file}: cannot read it: ${(err as Error).message}`);
  }
  if (text.trim() === '') throw new Error(`${what} ${file}: the file is empty`);
  return text;
}

/** A trust bundle: every PEM certificate in the file; at least one must parse. */
export function loadRootFile(file: string): LoadedRoot {
  const text = readText(file, 'root certificate file');
  const blocks = splitPemCertificates(text);
  if (blocks.length === 0) throw new Error(`root certificate file ${file}: no PEM CERTIFICATE block found`);
  const good: string[] = [];
  const warnings: string[] = [];
  let notAfter = Infinity;
  blocks.forEach((b, i) => {
    try {
      const c = new X509Certificate(b);
      good.push(b);
      notAfter = Math.min(notAfter, Date.parse(c.validTo));
    } catch (err) {
      warnings.push(`root certificate file ${file}: certificate ${i + 1} of ${blocks.length} does not parse (${(err as Error).message}); skipped`);
    }
  });
  if (good.length === 0) throw new Error(`root certificate file ${file}: none of its ${blocks.length} certificates parses (${warnings[0] ?? ''})`);
  return { kind: 'root', pem: good.join(''), notAfter, warnings };
}

/** A certificate chain (leaf first) and its private key; the key must match the leaf. */
export function loadKeyPairFiles(certFile: string, keyFile: string): LoadedKeyPair {
  const chain = readText(certFile, 'certificate file');
  const key = readText(keyFile, 'private key file');
  const blocks = splitPemCertificates(chain);
  if (blocks.length === 0) throw new Error(`certificate file ${certFile}: no PEM CERTIFICATE block found`);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(blocks[0] as string);
  } catch (err) {
    throw new Error(`certificate file ${certFile}: the first certificate does not parse: ${(err as Error).message}`);
  }
  let keyObject;
  try {
    keyObject = createPrivateKey(key);
  } catch (err) {
    throw new Error(`private key file ${keyFile}: not a PEM private key: ${(err as Error).message}`);
  }
  if (!leaf.checkPrivateKey(keyObject)) throw new Error(`private key file ${keyFile} does not match the certificate in ${certFile}`);
  const identities = (leaf.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((x) => x.startsWith('URI:'))
    .map((x) => x.slice(4));
  return {
    kind: 'keypair',
    certChainPem: chain,
    privateKeyPem: key,
    serialNumber: leaf.serialNumber,
    identities,
    notBefore: Date.parse(leaf.validFrom),
    notAfter: Date.parse(leaf.validTo),
    warnings: [],
  };
}

/** The first system trust bundle that exists, or undefined. */
export function findSystemRoot(candidates: readonly string[]): string | undefined {
  for (const p of candidates) {
    try {
      fs.statSync(p);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}
