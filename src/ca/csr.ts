/**
 * Workload key and CSR generation (Istio's `pkiutil.GenCSR`): a fresh key per request (RSA
 * with the configured modulus, or ECDSA P-256/P-384), and a PKCS#10 request whose only
 * content is a critical subjectAltName extension carrying the SPIFFE URI (the subject is
 * empty, hence critical, as RFC 5280 and SPIFFE require). Key generation runs off the main
 * thread (the libuv pool: `crypto.generateKeyPair`, and the callback form of `crypto.sign`).
 * The private key PEM is PKCS#1 (`RSA PRIVATE KEY`) or SEC 1 (`EC PRIVATE KEY`) like Istio's
 * default, or PKCS#8 when asked.
 *
 * The request (RFC 2986) is encoded with `./der.ts`, no X.509 library (it would cost the
 * agent megabytes of heap for one structure):
 *   CertificationRequest ::= SEQUENCE {
 *     certificationRequestInfo SEQUENCE {
 *       version INTEGER 0, subject SEQUENCE {} (empty Name), subjectPKInfo (Node's SPKI DER),
 *       attributes [0] { SEQUENCE { extensionRequest, SET { SEQUENCE OF Extension {
 *         subjectAltName, critical TRUE, OCTET STRING { GeneralNames { [6] URI } } } } } } },
 *     signatureAlgorithm (sha256WithRSAEncryption + NULL | ecdsa-with-SHA256/384, no params),
 *     signature BIT STRING (PKCS#1 v1.5, or the DER ECDSA-Sig-Value) }
 *
 * Exit paths: resolves with the PEMs and the public key; rejects with a ConfigError naming the
 * identity when it is not ASCII (a URI SAN is an IA5String), before any key is generated.
 */
import { generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { ConfigError } from '../errors.js';
import { bitString, boolean, contextSpecific, ia5Bytes, integer, nullValue, objectIdentifier, octetString, pem, sequence, setOf } from './der.js';
import type { KeySpec } from './options.js';

export interface GeneratedCsr {
  csrPem: string;
  privateKeyPem: string;
  /** The key pair, for checking that the issued certificate carries our public key. */
  publicKey: KeyObject;
}

const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const OID_ECDSA_WITH_SHA384 = '1.2.840.10045.4.3.3';
/** GeneralName's uniformResourceIdentifier: [6] IMPLICIT IA5String. */
const GENERAL_NAME_URI = 6;

export async function generateCsr(o: { identity: string; key: KeySpec; pkcs8?: boolean }): Promise<GeneratedCsr> {
  const attributes = extensionRequest(o.identity);
  const { publicKey, privateKey } = await newKeyPair(o.key);
  const { hash, algorithmIdentifier } = signatureAlgorithm(o.key);
  const info = sequence(integer(0), sequence(), publicKey.export({ type: 'spki', format: 'der' }), attributes);
  const signature = await signAsync(hash, info, privateKey);
  const type = o.pkcs8 ? 'pkcs8' : o.key.type === 'rsa' ? 'pkcs1' : 'sec1';
  return {
    csrPem: pem('CERTIFICATE REQUEST', sequence(info, algorithmIdentifier, bitString(signature))),
    privateKeyPem: privateKey.export({ type, format: 'pem' }) as string,
    publicKey,
  };
}

/** The `[0]` attributes: one extensionRequest with one critical subjectAltName (the URI). */
function extensionRequest(identity: string): Buffer {
  let uri: Buffer;
  try {
    uri = ia5Bytes(identity);
  } catch (err) {
    throw new ConfigError(`workload identity ${JSON.stringify(identity)} cannot be put in a CSR: a URI SAN must be ASCII`, { cause: err });
  }
  const generalNames = sequence(contextSpecific(GENERAL_NAME_URI, uri, false));
  const san = sequence(objectIdentifier(OID_SUBJECT_ALT_NAME), boolean(true), octetString(generalNames));
  const attribute = sequence(objectIdentifier(OID_EXTENSION_REQUEST), setOf(sequence(san)));
  return contextSpecific(0, attribute, true);
}

function signatureAlgorithm(key: KeySpec): { hash: 'sha256' | 'sha384'; algorithmIdentifier: Buffer } {
  if (key.type === 'rsa') return { hash: 'sha256', algorithmIdentifier: sequence(objectIdentifier(OID_SHA256_WITH_RSA), nullValue()) };
  if (key.curve === 'P-384') return { hash: 'sha384', algorithmIdentifier: sequence(objectIdentifier(OID_ECDSA_WITH_SHA384)) };
  return { hash: 'sha256', algorithmIdentifier: sequence(objectIdentifier(OID_ECDSA_WITH_SHA256)) };
}

function newKeyPair(key: KeySpec): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, publicKey: KeyObject, privateKey: KeyObject) => (err ? reject(err) : resolve({ publicKey, privateKey }));
    if (key.type === 'rsa') generateKeyPair('rsa', { modulusLength: key.bits, publicExponent: 0x10001 }, done);
    else generateKeyPair('ec', { namedCurve: key.curve }, done);
  });
}

/** RSA keys sign PKCS#1 v1.5; EC keys give the DER ECDSA-Sig-Value X.509 wants (Node's default). */
function signAsync(hash: string, data: Buffer, privateKey: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => sign(hash, data, privateKey, (err, signature) => (err ? reject(err) : resolve(signature))));
}
