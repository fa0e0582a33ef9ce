/**
 * PURE (given the clock): checks a CA's `cert_chain` answer and turns it into the
 * certificate the SDS server serves. Istio's rules: the chain must have more than one element
 * (leaf first, root last); `default` serves the whole chain concatenated, `ROOTCA` the last
 * element. We also insist the leaf parses, is currently valid and carries our public key, so a
 * confused CA cannot hand Envoy a certificate its private key does not match. A leaf issued
 * for another identity than requested is accepted with a warning (istiod signs the caller's
 * identity, whatever the CSR says).
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { AgentError } from '../errors.js';
import { splitPemCertificates } from './pem.js';

/** A workload certificate as served over SDS. Times are ms since the epoch. */
export interface IssuedCertificate {
  /** Leaf first, then intermediates, then the root: Istio's `default` chain. */
  certChainPem: string;
  privateKeyPem: string;
  /** The trust anchor served as `ROOTCA` (the chain's last element). */
  rootCertPem: string;
  /** URI SANs of the leaf. */
  identities: string[];
  serialNumber: string;
  notBefore: number;
  notAfter: number;
  /** When the agent received it: rotation is scheduled from here, as in Istio. */
  createdAt: number;
}

export interface CheckedChain {
  certificate: IssuedCertificate;
  warnings: string[];
}

export function checkCertChain(o: {
  chain: string[];
  privateKeyPem: string;
  publicKey: KeyObject;
  identity: string;
  now: number;
  caName: string;
}): CheckedChain {
  const bad = (msg: string): AgentError => new AgentError('CA_BAD_RESPONSE', `${o.caName} returned an unusable certificate chain: ${msg}`);
  if (o.chain.length <= 1) throw bad(`expected the leaf and the root (at least 2 elements), got ${o.chain.length}`);
  const pems = o.chain.flatMap((element, i) => {
    const blocks = splitPemCertificates(element);
    if (blocks.length === 0) throw bad(`element ${i} is not a PEM certificate`);
    return blocks;
  });
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(pems[0] as string);
  } catch (err) {
    throw bad(`cannot parse the leaf certificate: ${(err as Error).message}`);
  }
  const rootElement = o.chain[o.chain.length - 1] as string;
  try {
    for (const p of splitPemCertificates(rootElement)) new X509Certificate(p);
  } catch (err) {
    throw bad(`cannot parse the root certificate: ${(err as Error).message}`);
  }
  if (!leaf.publicKey.equals(o.publicKey)) throw bad('the leaf certificate does not carry the public key of our CSR');
  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  if (!(notAfter > o.now)) throw bad(`the leaf certificate expired at ${new Date(notAfter).toISOString()}`);
  const identities = uriSansOf(leaf);
  const warnings: string[] = [];
  if (!identities.includes(o.identity)) {
    warnings.push(`${o.caName} issued a certificate for ${identities.join(', ') || '(no URI SAN)'}, not the requested ${o.identity}`);
  }
  return {
    certificate: {
      certChainPem: pems.join(''),
      privateKeyPem: o.privateKeyPem,
      rootCertPem: splitPemCertificates(rootElement).join(''),
      identities,
      serialNumber: leaf.serialNumber,
      notBefore,
      notAfter,
      createdAt: o.now,
    },
    warnings,
  };
}

/** URI SANs from Node's `subjectAltName` text (`URI:spiffe://…, DNS:…`). */
export function uriSansOf(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
}
