/**
 * A throwaway PKI for TLS tests, generated at test time with the `openssl` CLI: a root CA and a
 * server certificate signed by it with the given SANs (default: istiod's service name,
 * `localhost` and 127.0.0.1). Files are written to `dir` (the caller removes it).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';

export interface TestPki {
  dir: string;
  caCertPath: string;
  caKeyPath: string;
  certPath: string;
  keyPath: string;
  caCert: string;
  cert: string;
  key: string;
}

export const ISTIOD_SAN = 'istiod.istio-system.svc';

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Generates a CA and a server cert (EC P-256, 1 day) for `sans` (DNS names or IPs). */
export function createTestPki(dir: string, sans: string[] = [ISTIOD_SAN, 'localhost', '127.0.0.1']): TestPki {
  fs.mkdirSync(dir, { recursive: true });
  const p = (f: string) => path.join(dir, f);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca-key.pem'], dir);
  openssl(['req', '-x509', '-new', '-key', 'ca-key.pem', '-sha256', '-days', '1', '-subj', '/O=pilot-agent tests/CN=test root CA', '-out', 'root-cert.pem'], dir);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'server-key.pem'], dir);
  openssl(['req', '-new', '-key', 'server-key.pem', '-subj', `/O=pilot-agent tests/CN=${sans[0] ?? 'server'}`, '-out', 'server.csr'], dir);
  const altNames = sans.map((s) => (net.isIP(s) ? `IP:${s}` : `DNS:${s}`)).join(',');
  fs.writeFileSync(p('ext.cnf'), `subjectAltName=${altNames}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n`);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'root-cert.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '1', '-sha256', '-extfile', 'ext.cnf', '-out', 'server-cert.pem'], dir);
  return {
    dir,
    caCertPath: p('root-cert.pem'),
    caKeyPath: p('ca-key.pem'),
    certPath: p('server-cert.pem'),
    keyPath: p('server-key.pem'),
    caCert: fs.readFileSync(p('root-cert.pem'), 'utf8'),
    cert: fs.readFileSync(p('server-cert.pem'), 'utf8'),
    key: fs.readFileSync(p('server-key.pem'), 'utf8'),
  };
}
