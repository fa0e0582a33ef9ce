/**
 * SPEC §7.1 upstream rules as a table (pure), then the per-stream shell: the token file re-read
 * for every stream and the root CA read at every dial, each failure naming its file.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { XdsDialError, upstreamDial, xdsHeaderSource, xdsUpstreamSettings, type XdsUpstreamSettings } from '../../src/xds/upstream.js';
import { seedConfig } from '../support/config.js';

type Row = {
  name: string;
  env?: Record<string, string>;
  proxyConfig?: Record<string, unknown>;
  annotations?: string;
  existing?: string[];
  expect: Partial<Omit<XdsUpstreamSettings, 'token'>> & { token?: XdsUpstreamSettings['token'] | null };
};

const ROWS: Row[] = [
  {
    name: 'seed pod: mTLS to istiod, default root CA, first-party token (1.6 path), ClusterID',
    expect: {
      address: 'istiod.istio-system.svc:15012',
      plaintext: false,
      rootCaPath: '/work/var/run/secrets/istio/root-cert.pem',
      serverName: 'istiod.istio-system.svc',
      token: { path: '/var/run/secrets/kubernetes.io/serviceaccount/token', jwtPolicy: 'first-party-jwt' },
      staticHeaders: { clusterid: 'Kubernetes' },
    },
  },
  {
    name: 'legacy ./etc/certs/root-cert.pem wins when it exists',
    existing: ['/work/etc/certs/root-cert.pem'],
    expect: { rootCaPath: '/work/etc/certs/root-cert.pem' },
  },
  {
    name: 'XDS_ROOT_CA wins over both (relative to cwd)',
    env: { XDS_ROOT_CA: 'certs/ca.pem' },
    existing: ['/work/etc/certs/root-cert.pem'],
    expect: { rootCaPath: '/work/certs/ca.pem' },
  },
  { name: 'XDS_ROOT_CA absolute', env: { XDS_ROOT_CA: '/etc/ca/root.pem' }, expect: { rootCaPath: '/etc/ca/root.pem' } },
  { name: 'ISTIOD_SAN wins', env: { ISTIOD_SAN: 'istiod.custom.svc' }, expect: { serverName: 'istiod.custom.svc' } },
  {
    name: 'localhost discovery address → istiod.istio-system.svc',
    proxyConfig: { discoveryAddress: 'localhost:15012' },
    expect: { address: 'localhost:15012', serverName: 'istiod.istio-system.svc' },
  },
  {
    name: 'other host → that host as SAN; port 15010 does not select plaintext',
    proxyConfig: { discoveryAddress: 'istiod-canary.istio-system.svc:15010' },
    expect: { plaintext: false, serverName: 'istiod-canary.istio-system.svc' },
  },
  {
    name: 'annotation sidecar.istio.io/discoveryAddress is the address',
    annotations: 'sidecar.istio.io/discoveryAddress="istiod-rev.istio-system.svc:15012"',
    expect: { address: 'istiod-rev.istio-system.svc:15012', serverName: 'istiod-rev.istio-system.svc' },
  },
  {
    name: 'controlPlaneAuthPolicy NONE → plaintext, no root CA, no SAN',
    proxyConfig: { controlPlaneAuthPolicy: 'NONE' },
    expect: { plaintext: true, rootCaPath: undefined, serverName: undefined },
  },
  {
    name: 'third-party-jwt → ./var/run/secrets/tokens/istio-token',
    env: { JWT_POLICY: 'third-party-jwt' },
    expect: { token: { path: '/work/var/run/secrets/tokens/istio-token', jwtPolicy: 'third-party-jwt' } },
  },
  { name: 'any other JWT_POLICY → no token', env: { JWT_POLICY: 'none' }, expect: { token: null } },
  {
    name: 'XDS_HEADER_* become metadata (lower-cased); invalid keys are reported',
    env: { XDS_HEADER_Team: 'payments', XDS_HEADER_X_REV: 'canary', 'XDS_HEADER_BAD KEY': 'x', XDS_HEADER_AUTHORIZATION: 'nope', ISTIO_META_CLUSTER_ID: 'east' },
    expect: { staticHeaders: { clusterid: 'east', team: 'payments', x_rev: 'canary' }, invalidHeaders: ['XDS_HEADER_AUTHORIZATION', 'XDS_HEADER_BAD KEY'] },
  },
];

describe('xdsUpstreamSettings (pure)', () => {
  test.each(ROWS.map((r) => [r.name, r] as const))('%s', (_name, row) => {
    const proxyConfig = { proxyMetadata: { DNS_AGENT: '' }, ...(row.proxyConfig ?? {}) };
    const config = seedConfig({
      extraEnv: { ...(row.env ?? {}), PROXY_CONFIG: JSON.stringify(proxyConfig) },
      ...(row.annotations ? { podAnnotationsText: row.annotations } : {}),
    });
    const exists = (p: string) => (row.existing ?? []).includes(p);
    const s = xdsUpstreamSettings(config, exists);
    const { token, ...rest } = row.expect;
    for (const [k, v] of Object.entries(rest)) expect({ [k]: (s as unknown as Record<string, unknown>)[k] }).toEqual({ [k]: v });
    if (token === null) expect(s.token).toBeUndefined();
    else if (token) expect(s.token).toEqual(token);
  });
});

describe('per-stream shell', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xds-upstream-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('the token is re-read for every stream; a missing file names the path and JWT_POLICY', async () => {
    const tokenPath = path.join(dir, 'istio-token');
    const headers = xdsHeaderSource({ staticHeaders: { clusterid: 'Kubernetes' }, token: { path: tokenPath, jwtPolicy: 'third-party-jwt' } });
    await expect(headers()).rejects.toThrow(XdsDialError);
    await expect(headers()).rejects.toMatchObject({ code: 'XDS_DIAL_FAILED', name: 'XdsDialError' });
    await expect(headers()).rejects.toThrow(`token file ${tokenPath} (JWT_POLICY=third-party-jwt) does not exist`);
    fs.writeFileSync(tokenPath, 'first\n');
    expect(await headers()).toEqual({ clusterid: 'Kubernetes', authorization: 'Bearer first' });
    fs.writeFileSync(tokenPath, 'rotated');
    expect((await headers()).authorization).toBe('Bearer rotated');
    fs.writeFileSync(tokenPath, '  \n');
    await expect(headers()).rejects.toThrow('is empty');
  });

  test('no token policy: no authorization header', async () => {
    expect(await xdsHeaderSource({ staticHeaders: { clusterid: '' } })()).toEqual({ clusterid: '' });
  });

  test('TLS: the root CA is read at dial time (a missing file is named); SNI/SAN, ALPN h2 and a 16 MiB window', async () => {
    const ca = path.join(dir, 'missing-root.pem');
    await expect(upstreamDial({ address: 'istiod:15012', plaintext: false, rootCaPath: ca, serverName: 'istiod.istio-system.svc' })).rejects.toThrow(`root CA ${ca} for the xDS connection does not exist`);
    fs.writeFileSync(ca, 'PEM');
    const tlsDial = await upstreamDial({ address: '127.0.0.1:15012', plaintext: false, rootCaPath: ca, serverName: 'istiod.istio-system.svc' });
    expect(tlsDial).toMatchObject({ url: 'https://127.0.0.1:15012', authority: 'istiod.istio-system.svc', options: { servername: 'istiod.istio-system.svc', ALPNProtocols: ['h2'] } });
    expect(String(tlsDial.options.ca)).toBe('PEM');
    const plain = await upstreamDial({ address: '127.0.0.1:15010', plaintext: true });
    expect(plain.url).toBe('http://127.0.0.1:15010');
    expect(plain.options.settings?.initialWindowSize).toBe(16 * 1024 * 1024);
  });
});
