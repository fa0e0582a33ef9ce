/**
 * PURE: the workload-certificate options from the agent config (SPEC §7.3, §7.1): the CA
 * address and transport (:15010 = plaintext), the root CA precedence, ServerName/SAN, the
 * token path per JWT_POLICY, the identity, TTL, key type, rotation ratios, and the errors and
 * warnings for bad values. Also the CSR itself (`generateCsr`): its SAN, criticality and key.
 */
import { describe, expect, test } from '@jest/globals';
import { createPublicKey } from 'node:crypto';
import { generateCsr } from '../../src/ca/csr.js';
import { caServerName, certOptionsFromConfig, spiffeIdentity, tokenPathFor } from '../../src/ca/options.js';
import { uriSans, x509 } from '../support/x509.js';
import { ConfigError } from '../../src/errors.js';
import { seedConfig } from '../support/config.js';

const options = (env: Record<string, string> = {}) => certOptionsFromConfig(seedConfig({ extraEnv: env }));

describe('CA address, transport and trust', () => {
  test("the seed pod: istiod's TLS port, the mounted root, the first-party token, ClusterID, 24h, RSA 2048", () => {
    const o = options();
    expect(o.ca).toEqual({
      address: 'istiod.istio-system.svc:15012',
      addressSource: 'CA_ADDR',
      tls: { rootCertPath: '/work/var/run/secrets/istio/root-cert.pem', rootCertSource: 'the default CA root', serverName: 'istiod.istio-system.svc' },
      tokenPath: '/var/run/secrets/kubernetes.io/serviceaccount/token',
      jwtPolicy: 'first-party-jwt',
      clusterId: 'Kubernetes',
      identity: 'spiffe://cluster.local/ns/jiuxi-ns/sa/default',
      ttlSeconds: 86_400,
      key: { type: 'rsa', bits: 2048 },
      pkcs8: false,
    });
    expect(o.rotation).toEqual({ graceRatio: 0.5, graceJitter: 0.01 });
    expect(o.warnings).toEqual([]);
  });

  test('CA_ADDR ending in :15010 is plaintext; any other port is TLS', () => {
    expect(options({ CA_ADDR: 'istiod.istio-system.svc:15010' }).ca.tls).toBe(false);
    expect(options({ CA_ADDR: 'ca.example.com:443' }).ca.tls).toMatchObject({ serverName: 'ca.example.com' });
  });

  test('CA_ADDR unset: the discovery address, and ISTIOD_SAN names the expected SAN', () => {
    const o = options({ CA_ADDR: '', ISTIOD_SAN: 'istiod-canary.istio-system.svc', PROXY_CONFIG: '{"discoveryAddress":"istiod-canary.istio-system.svc:15012"}' });
    expect(o.ca.address).toBe('istiod-canary.istio-system.svc:15012');
    expect(o.ca.addressSource).toBe('discoveryAddress');
    expect(o.ca.tls).toMatchObject({ serverName: 'istiod-canary.istio-system.svc' });
    // With CA_ADDR set, ISTIOD_SAN is istiod's name, not the CA's (Istio's rule).
    expect(options({ ISTIOD_SAN: 'other' }).ca.tls).toMatchObject({ serverName: 'istiod.istio-system.svc' });
  });

  test('ServerName: the host of the address; localhost means istiod.istio-system.svc', () => {
    expect(caServerName('localhost:15012', true, '')).toBe('istiod.istio-system.svc');
    expect(caServerName('[fd00::1]:15012', true, '')).toBe('fd00::1');
    expect(caServerName('10.0.0.1:15012', false, 'istiod.x.svc')).toBe('istiod.x.svc');
  });

  test('root CA: CA_ROOT_CA (relative to cwd), SYSTEM, PILOT_CERT_PROVIDER=custom, else the mounted one', () => {
    expect(options({ CA_ROOT_CA: 'etc/ca/root.pem' }).ca.tls).toMatchObject({ rootCertPath: '/work/etc/ca/root.pem', rootCertSource: 'CA_ROOT_CA' });
    expect(options({ CA_ROOT_CA: 'SYSTEM' }).ca.tls).toMatchObject({ rootCertPath: 'SYSTEM' });
    expect(options({ PILOT_CERT_PROVIDER: 'custom' }).ca.tls).toMatchObject({ rootCertPath: '/work/etc/certs/root-cert.pem', rootCertSource: 'PILOT_CERT_PROVIDER=custom' });
  });

  test('token path per JWT_POLICY (1.6 mapping), re-resolved against the cwd', () => {
    expect(tokenPathFor('third-party-jwt', '/pod')).toBe('/pod/var/run/secrets/tokens/istio-token');
    expect(tokenPathFor('first-party-jwt', '/pod')).toBe('/var/run/secrets/kubernetes.io/serviceaccount/token');
    expect(tokenPathFor('none', '/pod')).toBeUndefined();
    expect(options({ JWT_POLICY: 'third-party-jwt' }).ca.tokenPath).toBe('/work/var/run/secrets/tokens/istio-token');
  });
});

describe('identity, TTL, key and rotation', () => {
  test('SPIFFE identity from TRUST_DOMAIN, POD_NAMESPACE, SERVICE_ACCOUNT; SECRET_TTL in whole seconds', () => {
    expect(spiffeIdentity('td.example', 'ns1', 'sa1')).toBe('spiffe://td.example/ns/ns1/sa/sa1');
    const o = options({ TRUST_DOMAIN: 'corp.example', SERVICE_ACCOUNT: 'payments', SECRET_TTL: '6.9s' });
    expect(o.ca.identity).toBe('spiffe://corp.example/ns/jiuxi-ns/sa/payments');
    expect(o.ca.ttlSeconds).toBe(6);
    expect(options({ SERVICE_ACCOUNT: '' }).warnings).toEqual([expect.stringContaining('SERVICE_ACCOUNT is empty')]);
  });

  test('keys: WORKLOAD_RSA_KEY_SIZE, ECDSA with ECC_CURVE, PKCS8_KEY', () => {
    expect(options({ WORKLOAD_RSA_KEY_SIZE: '4096' }).ca.key).toEqual({ type: 'rsa', bits: 4096 });
    expect(options({ ECC_SIGNATURE_ALGORITHM: 'ECDSA' }).ca.key).toEqual({ type: 'ecdsa', curve: 'P-256' });
    expect(options({ ECC_SIGNATURE_ALGORITHM: 'ECDSA', ECC_CURVE: 'P384' }).ca.key).toEqual({ type: 'ecdsa', curve: 'P-384' });
    const odd = options({ ECC_SIGNATURE_ALGORITHM: 'ECDSA', ECC_CURVE: 'P521' });
    expect(odd.ca.key).toEqual({ type: 'ecdsa', curve: 'P-256' });
    expect(odd.warnings).toEqual(['invalid value for env ECC_CURVE: "P521" (expected P256 or P384); using P256']);
    expect(options({ PKCS8_KEY: 'true' }).ca.pkcs8).toBe(true);
  });

  test('values that can never work are configuration errors naming the variable', () => {
    expect(() => options({ WORKLOAD_RSA_KEY_SIZE: '1024' })).toThrow(
      new ConfigError('WORKLOAD_RSA_KEY_SIZE: requested key size does not meet the minimum required size of 2048, got 1024'),
    );
    expect(() => options({ ECC_SIGNATURE_ALGORITHM: 'ED25519' })).toThrow('ECC_SIGNATURE_ALGORITHM: unsupported EC signature algorithm "ED25519" (expected ECDSA, or unset for RSA)');
    expect(() => options({ SECRET_TTL: '500ms' })).toThrow('SECRET_TTL: must be at least 1s, got 500ms');
  });

  test('rotation ratios: parsed, or the default with a warning naming the variable', () => {
    expect(options({ SECRET_GRACE_PERIOD_RATIO: '0.25', SECRET_GRACE_PERIOD_RATIO_JITTER: '0' }).rotation).toEqual({ graceRatio: 0.25, graceJitter: 0 });
    const bad = options({ SECRET_GRACE_PERIOD_RATIO: '1.5', SECRET_GRACE_PERIOD_RATIO_JITTER: 'x' });
    expect(bad.rotation).toEqual({ graceRatio: 0.5, graceJitter: 0.01 });
    expect(bad.warnings).toEqual([
      'invalid value for env SECRET_GRACE_PERIOD_RATIO: "1.5" (expected a number between 0 and 1 (exclusive)); using default 0.5',
      'invalid value for env SECRET_GRACE_PERIOD_RATIO_JITTER: "x" (expected a number in [0, 0.5)); using default 0.01',
    ]);
  });
});

describe('the CSR', () => {
  test('RSA: a PKCS#10 request whose only content is a critical URI SAN with the identity, signed by the key', async () => {
    const identity = 'spiffe://cluster.local/ns/jiuxi-ns/sa/default';
    const g = await generateCsr({ identity, key: { type: 'rsa', bits: 2048 } });
    const csr = new x509.Pkcs10CertificateRequest(g.csrPem);
    expect(await csr.verify()).toBe(true);
    expect(csr.subject).toBe('');
    expect(uriSans(csr)).toEqual([identity]);
    expect(csr.extensions.map((e) => [e.type, e.critical])).toEqual([['2.5.29.17', true]]);
    const csrKey = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
    expect(csrKey.equals(g.publicKey)).toBe(true);
    expect(createPublicKey(g.privateKeyPem).equals(g.publicKey)).toBe(true);
    expect(g.privateKeyPem).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);
    expect(csr.signatureAlgorithm).toMatchObject({ name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } });
  });

  test('ECDSA P-384 signs with SHA-384', async () => {
    const g = await generateCsr({ identity: 'spiffe://a/ns/b/sa/c', key: { type: 'ecdsa', curve: 'P-384' } });
    const csr = new x509.Pkcs10CertificateRequest(g.csrPem);
    expect(await csr.verify()).toBe(true);
    expect(csr.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-384' } });
    expect(g.privateKeyPem).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);
  });
});
