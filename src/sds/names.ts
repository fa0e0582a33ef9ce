/**
 * PURE: the SDS resource names the agent answers (Istio's `pkg/security`: `default`, `ROOTCA`,
 * `file-root:system`, `file-root:<path>`, `file-cert:<cert>~<key>`) and how each is read.
 *
 * `parseSecretName(name)` never throws: a name that does not fit the grammar is
 * `{ kind: 'invalid', error }`, the error naming the input and the expected form. Paths are
 * taken as written (relative ones resolve against the agent's working directory, as Istio's do).
 * Istio hands any other name to its CA client (a workload certificate under that name); the
 * issue asks for a clear error instead, so an unknown name is `invalid` here.
 */

export const WORKLOAD_SECRET = 'default';
export const ROOT_SECRET = 'ROOTCA';
/** The OS trust bundle (Istio's `FileRootSystemCACert`). */
export const FILE_ROOT_SYSTEM = 'file-root:system';
export const FILE_ROOT_PREFIX = 'file-root:';
export const FILE_CERT_PREFIX = 'file-cert:';
/** Separates the certificate and key paths of a `file-cert:` name (Istio's `ResourceSeparator`). */
export const RESOURCE_SEPARATOR = '~';

/**
 * The OS trust bundle locations, first existing one wins (Go's `crypto/x509/root_linux.go`,
 * as Istio's `GetOSRootFilePath`).
 */
export const SYSTEM_ROOT_PATHS: readonly string[] = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/pki/tls/cacert.pem',
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem',
  '/etc/ssl/cert.pem',
  '/usr/local/etc/ssl/cert.pem',
  '/etc/ssl/certs/ca-certificates',
];

export type SecretName =
  | { kind: 'workload' }
  | { kind: 'root' }
  | { kind: 'system-root' }
  | { kind: 'file-root'; path: string }
  | { kind: 'file-cert'; certPath: string; keyPath: string }
  | { kind: 'invalid'; error: string };

const GRAMMAR = `expected ${WORKLOAD_SECRET}, ${ROOT_SECRET}, ${FILE_ROOT_SYSTEM}, ${FILE_ROOT_PREFIX}<path> or ${FILE_CERT_PREFIX}<cert path>${RESOURCE_SEPARATOR}<key path>`;

export function parseSecretName(name: string): SecretName {
  if (name === WORKLOAD_SECRET) return { kind: 'workload' };
  if (name === ROOT_SECRET) return { kind: 'root' };
  if (name === FILE_ROOT_SYSTEM) return { kind: 'system-root' };
  const q = JSON.stringify(name);
  if (name.startsWith(FILE_CERT_PREFIX)) {
    const parts = name.slice(FILE_CERT_PREFIX.length).split(RESOURCE_SEPARATOR);
    if (parts.length !== 2) {
      return { kind: 'invalid', error: `SDS resource name ${q}: a ${FILE_CERT_PREFIX} name needs exactly two paths separated by ${RESOURCE_SEPARATOR} (${FILE_CERT_PREFIX}<cert path>${RESOURCE_SEPARATOR}<key path>)` };
    }
    const [certPath, keyPath] = parts as [string, string];
    if (certPath === '' || keyPath === '') return { kind: 'invalid', error: `SDS resource name ${q}: empty ${certPath === '' ? 'certificate' : 'key'} path (${FILE_CERT_PREFIX}<cert path>${RESOURCE_SEPARATOR}<key path>)` };
    return { kind: 'file-cert', certPath, keyPath };
  }
  if (name.startsWith(FILE_ROOT_PREFIX)) {
    const p = name.slice(FILE_ROOT_PREFIX.length);
    if (p.includes(RESOURCE_SEPARATOR)) return { kind: 'invalid', error: `SDS resource name ${q}: a ${FILE_ROOT_PREFIX} name takes one path, without ${RESOURCE_SEPARATOR}` };
    if (p === '') return { kind: 'invalid', error: `SDS resource name ${q}: empty path (${FILE_ROOT_PREFIX}<path> or ${FILE_ROOT_SYSTEM})` };
    return { kind: 'file-root', path: p };
  }
  return { kind: 'invalid', error: `SDS resource name ${q} is not served: ${GRAMMAR}` };
}
