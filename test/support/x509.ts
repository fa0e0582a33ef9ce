/**
 * Tests' one entry point to `@peculiar/x509` (certificate and CSR parsing, and
 * signing): installs the Reflect polyfill it needs, then loads it and points it at Node's
 * WebCrypto. The package is loaded with `require` after the polyfill's body has run: with a
 * static import, loaders that evaluate CommonJS dependencies while linking (Jest's ESM) would
 * load it first. Use the value `x509` from here, and the namespace type `X509` for types.
 */
import './reflect-polyfill.js';
import { webcrypto } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as X509 from '@peculiar/x509';

const x509 = createRequire(import.meta.url)('@peculiar/x509') as typeof X509;
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
export type { X509 };

/** OID of the subjectAltName extension. */
export const OID_SUBJECT_ALT_NAME = '2.5.29.17';

/** The URI SANs of a certificate or CSR (empty when it has none). */
export function uriSans(item: X509.X509Certificate | X509.Pkcs10CertificateRequest): string[] {
  const ext = item.extensions.find((e) => e.type === OID_SUBJECT_ALT_NAME);
  if (!ext) return [];
  const san = new x509.SubjectAlternativeNameExtension(ext.rawData);
  return san.names.items.filter((n) => n.type === 'url').map((n) => n.value);
}
