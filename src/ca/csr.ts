/**
 * Workload key and CSR generation (Istio's `pkiutil.GenCSR`): a fresh key per request (RSA
 * with the configured modulus, or ECDSA P-256/P-384), and a PKCS#10 request whose only
 * content is a critical subjectAltName extension carrying the SPIFFE URI (the subject is
 * empty, hence critical, as RFC 5280 and SPIFFE require). Key generation runs off the main
 * thread (WebCrypto). The private key PEM is PKCS#1 (`RSA PRIVATE KEY`) or SEC 1
 * (`EC PRIVATE KEY`) like Istio's default, or PKCS#8 when asked.
 */
import { KeyObject, webcrypto } from 'node:crypto';
import type { KeySpec } from './options.js';
import { x509 } from './x509.js';

export interface GeneratedCsr {
  csrPem: string;
  privateKeyPem: string;
  /** The key pair, for checking that the issued certificate carries our public key. */
  publicKey: KeyObject;
}

type Algorithm = RsaHashedKeyGenParams | EcKeyGenParams;
type RsaHashedKeyGenParams = { name: 'RSASSA-PKCS1-v1_5'; hash: 'SHA-256'; modulusLength: number; publicExponent: Uint8Array };
type EcKeyGenParams = { name: 'ECDSA'; namedCurve: 'P-256' | 'P-384'; hash: 'SHA-256' | 'SHA-384' };

function algorithm(key: KeySpec): Algorithm {
  if (key.type === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: key.bits, publicExponent: new Uint8Array([1, 0, 1]) };
  return { name: 'ECDSA', namedCurve: key.curve, hash: key.curve === 'P-384' ? 'SHA-384' : 'SHA-256' };
}

export async function generateCsr(o: { identity: string; key: KeySpec; pkcs8?: boolean }): Promise<GeneratedCsr> {
  const alg = algorithm(o.key);
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: o.identity }], true)],
  });
  const privateKey = KeyObject.from(keys.privateKey);
  const type = o.pkcs8 ? 'pkcs8' : o.key.type === 'rsa' ? 'pkcs1' : 'sec1';
  return {
    csrPem: `${csr.toString('pem')}\n`,
    privateKeyPem: privateKey.export({ type, format: 'pem' }) as string,
    publicKey: KeyObject.from(keys.publicKey),
  };
}
