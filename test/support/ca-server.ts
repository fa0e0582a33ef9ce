/**
 * A test Istio CA: a CA generated at test time (`TestCa`: root, optional intermediate, leaf and
 * server certificates), the `istio.v1.auth.IstioCertificateService/CreateCertificate` service
 * signing with it (`CaService`, mountable on any grpc-js server, e.g. the test control plane's),
 * and that service on its own port (`CaServer`), over TLS (server certificate signed by the same
 * root, DNS SANs of your choice, `caServerCredentials`) or plaintext, on 127.0.0.1.
 *
 * It behaves like istiod's CA where the agent can see it: the bearer token must be one it knows
 * (else UNAUTHENTICATED "request authenticate failure"); the CSR must parse and its signature
 * verify (else INVALID_ARGUMENT "CSR signing error (…)"); the leaf carries the token's identity
 * as a critical URI SAN and lives `validity_duration` seconds (capped by `maxTtlSeconds`, over
 * which the request is refused like istiod's TTL check); the answer is `[leaf, (intermediate),
 * root]`, one PEM per element. Stricter than istiod (which ignores the CSR's SAN), it also
 * refuses a CSR whose URI SAN is not the token's identity, so a wrong CSR cannot pass unseen.
 *
 * Faults: `setFault({code, message, times})` answers the next `times` calls (default: all until
 * cleared) with that status; `down()` closes the port (connection refused) and `up()` reopens
 * it on the same port. Every call is recorded in `requests`.
 */
import { KeyObject, X509Certificate, randomBytes, webcrypto } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { certOptionsFromConfig, type CertOptions } from '../../src/ca/options.js';
import { CREATE_CERTIFICATE_PATH, decodeCertificateRequest, encodeCertificateResponse, type IstioCertificateRequest, type IstioCertificateResponse } from '../../src/ca/proto.js';
import { uriSans, x509, type X509 } from './x509.js';
import { seedConfig } from './config.js';

type CryptoKey = webcrypto.CryptoKey;
type KeyPair = webcrypto.CryptoKeyPair;

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const RSA_ALG = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) } as const;

export interface TestCaOptions {
  /** Subject organisation of the root (default `cluster.local`, like Istio's self-signed root). */
  organization?: string;
  /** Key type of the CA keys (default ecdsa: fast; rsa: 2048 like Istio's). */
  keyType?: 'ecdsa' | 'rsa';
  /** Sign leaves with an intermediate CA (chain `[leaf, intermediate, root]`). */
  intermediate?: boolean;
}

export interface IssuedPair {
  certPem: string;
  keyPem: string;
}

async function newKeys(type: 'ecdsa' | 'rsa'): Promise<{ keys: KeyPair; alg: typeof EC_ALG | typeof RSA_ALG }> {
  const alg = type === 'rsa' ? RSA_ALG : EC_ALG;
  return { keys: (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as KeyPair, alg };
}

const serial = (): string => `01${randomBytes(15).toString('hex')}`;
const pem = (c: X509.X509Certificate): string => `${c.toString('pem')}\n`;
const keyPem = (k: CryptoKey): string => KeyObject.from(k).export({ type: 'pkcs8', format: 'pem' }) as string;

export class TestCa {
  private constructor(
    readonly rootCertPem: string,
    private readonly issuer: X509.X509Certificate,
    private readonly issuerKey: CryptoKey,
    private readonly alg: typeof EC_ALG | typeof RSA_ALG,
    /** PEM of the intermediate, when there is one. */
    readonly intermediatePem: string | undefined,
  ) {}

  static async create(o: TestCaOptions = {}): Promise<TestCa> {
    const type = o.keyType ?? 'ecdsa';
    const { keys, alg } = await newKeys(type);
    const now = Date.now();
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `O=${o.organization ?? 'cluster.local'}`,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 10 * 365 * 86_400_000),
      keys: keys as never,
      signingAlgorithm: alg,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never),
      ],
    });
    if (!o.intermediate) return new TestCa(pem(root), root, keys.privateKey, alg, undefined);
    const inter = await newKeys(type);
    const intermediate = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `O=${o.organization ?? 'cluster.local'}, CN=Intermediate CA`,
      issuer: root.subject,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 5 * 365 * 86_400_000),
      publicKey: inter.keys.publicKey as never,
      signingKey: keys.privateKey as never,
      signingAlgorithm: alg,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(inter.keys.publicKey as never),
        await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey as never),
      ],
    });
    return new TestCa(pem(root), intermediate, inter.keys.privateKey, alg, pem(intermediate));
  }

  /** The chain a CreateCertificate answer carries after the leaf. */
  get chainAfterLeaf(): string[] {
    return this.intermediatePem ? [this.intermediatePem, this.rootCertPem] : [this.rootCertPem];
  }

  private async leaf(o: { publicKey: CryptoKey | X509.PublicKey; ttlMs: number; uris?: string[]; dnsNames?: string[]; now?: number }): Promise<X509.X509Certificate> {
    const now = o.now ?? Date.now();
    const names: Array<{ type: 'url' | 'dns'; value: string }> = [...(o.uris ?? []).map((value) => ({ type: 'url' as const, value })), ...(o.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value }))];
    return x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: '',
      issuer: this.issuer.subject,
      notBefore: new Date(now),
      notAfter: new Date(now + o.ttlMs),
      publicKey: o.publicKey as never,
      signingKey: this.issuerKey as never,
      signingAlgorithm: this.alg,
      extensions: [
        new x509.SubjectAlternativeNameExtension(names, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.BasicConstraintsExtension(false, undefined, true),
        await x509.AuthorityKeyIdentifierExtension.create(this.issuer.publicKey as never),
        await x509.SubjectKeyIdentifierExtension.create(o.publicKey as never),
      ],
    });
  }

  /** Signs a PEM CSR for `identity`: `[leaf, (intermediate), root]`. */
  async signCsr(csrPem: string, identity: string, ttlSeconds: number): Promise<string[]> {
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    const leaf = await this.leaf({ publicKey: csr.publicKey, ttlMs: ttlSeconds * 1000, uris: [identity] });
    return [pem(leaf), ...this.chainAfterLeaf];
  }

  /** A fresh key and a certificate for it (workload URIs and/or DNS names): for TLS servers and peers. */
  async issue(o: { uris?: string[]; dnsNames?: string[]; ttlMs?: number }): Promise<IssuedPair> {
    const { keys } = await newKeys('ecdsa');
    const cert = await this.leaf({ publicKey: keys.publicKey, ttlMs: o.ttlMs ?? 3_600_000, ...(o.uris ? { uris: o.uris } : {}), ...(o.dnsNames ? { dnsNames: o.dnsNames } : {}) });
    return { certPem: [pem(cert), ...(this.intermediatePem ? [this.intermediatePem] : [])].join(''), keyPem: keyPem(keys.privateKey) };
  }
}

export interface CaFault {
  code: grpc.status;
  message: string;
  /** Answer this many calls with the fault, then clear it (default: until cleared). */
  times?: number;
}

export interface CaRequestRecord {
  at: number;
  authorization: string | undefined;
  clusterId: string | undefined;
  validityDuration: number;
  csrSans: string[];
  /** 'OK' or the status name answered. */
  outcome: string;
  /** Serial of the issued leaf, when OK. */
  serial?: string;
}

export interface CaServiceOptions {
  ca: TestCa;
  /** Bearer token → the SPIFFE identity it authenticates. */
  tokens: Record<string, string>;
  /** Largest accepted `validity_duration` (default 90 days, istiod's). */
  maxTtlSeconds?: number;
  /** TTL used when the request says 0 (default 24 h). */
  defaultTtlSeconds?: number;
}

/**
 * The CreateCertificate service alone: `register(server)` mounts it on any grpc-js Server (e.g.
 * the test control plane's, so one istiod-like port serves xDS and the CA, as istiod does).
 */
export class CaService {
  readonly requests: CaRequestRecord[] = [];
  private fault: CaFault | undefined;

  constructor(readonly options: CaServiceOptions) {}

  setFault(fault: CaFault | undefined): void {
    this.fault = fault;
  }

  register(server: grpc.Server): void {
    server.addService(
      {
        CreateCertificate: {
          path: CREATE_CERTIFICATE_PATH,
          requestStream: false,
          responseStream: false,
          requestSerialize: () => Buffer.alloc(0),
          requestDeserialize: decodeCertificateRequest,
          responseSerialize: encodeCertificateResponse,
          responseDeserialize: () => ({}),
        },
      } as grpc.ServiceDefinition,
      { CreateCertificate: (call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>, cb: grpc.sendUnaryData<IstioCertificateResponse>) => void this.handle(call, cb) },
    );
  }

  private async handle(call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>, cb: grpc.sendUnaryData<IstioCertificateResponse>): Promise<void> {
    const md = call.metadata.getMap();
    const req = call.request;
    const rec: CaRequestRecord = {
      at: Date.now(),
      authorization: typeof md.authorization === 'string' ? md.authorization : undefined,
      clusterId: typeof md.clusterid === 'string' ? md.clusterid : undefined,
      validityDuration: Number(req.validity_duration),
      csrSans: [],
      outcome: 'OK',
    };
    this.requests.push(rec);
    const fail = (code: grpc.status, message: string): void => {
      rec.outcome = grpc.status[code] ?? String(code);
      cb({ code, details: message });
    };
    const f = this.fault;
    if (f) {
      if (f.times !== undefined && --f.times <= 0) this.fault = undefined;
      return fail(f.code, f.message);
    }
    const token = rec.authorization?.startsWith('Bearer ') ? rec.authorization.slice(7) : undefined;
    const identity = token === undefined ? undefined : this.options.tokens[token];
    if (identity === undefined) return fail(grpc.status.UNAUTHENTICATED, 'request authenticate failure');
    let csr: X509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(req.csr);
      rec.csrSans = uriSans(csr);
      if (!(await csr.verify())) throw new Error('the CSR signature does not verify');
    } catch (err) {
      return fail(grpc.status.INVALID_ARGUMENT, `CSR signing error (failed to parse the CSR: ${(err as Error).message})`);
    }
    if (rec.csrSans.length !== 1 || rec.csrSans[0] !== identity) {
      return fail(grpc.status.INVALID_ARGUMENT, `CSR signing error (the CSR asks for ${JSON.stringify(rec.csrSans)}, but the caller is ${identity})`);
    }
    const maxTtl = this.options.maxTtlSeconds ?? 90 * 86_400;
    const ttl = rec.validityDuration > 0 ? rec.validityDuration : (this.options.defaultTtlSeconds ?? 86_400);
    if (ttl > maxTtl) return fail(grpc.status.INVALID_ARGUMENT, `CSR signing error (requested TTL ${ttl}s is greater than the max allowed TTL ${maxTtl}s)`);
    const chain = await this.options.ca.signCsr(req.csr, identity, ttl);
    rec.serial = new X509Certificate(chain[0] as string).serialNumber;
    cb(null, { cert_chain: chain });
  }
}

/** gRPC server credentials for an istiod-like endpoint: a certificate from `ca` for these DNS names. */
export async function caServerCredentials(ca: TestCa, dnsNames: string[] = ['istiod.istio-system.svc', 'localhost']): Promise<grpc.ServerCredentials> {
  const pair = await ca.issue({ dnsNames, ttlMs: 86_400_000 });
  return grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(pair.certPem), private_key: Buffer.from(pair.keyPem) }], false);
}

export interface CaServerOptions extends CaServiceOptions {
  /** TLS with a server certificate for these DNS names (default `istiod.istio-system.svc`, `localhost`); false = plaintext. */
  tls?: { dnsNames: string[] } | false;
}

/** The CA service on its own port (127.0.0.1), which can go down and come back. */
export class CaServer {
  readonly service: CaService;
  private server: grpc.Server | undefined;
  port = 0;

  private constructor(
    readonly options: CaServerOptions,
    private readonly credentials: grpc.ServerCredentials,
  ) {
    this.service = new CaService(options);
  }

  static async start(options: CaServerOptions): Promise<CaServer> {
    const t = options.tls ?? { dnsNames: ['istiod.istio-system.svc', 'localhost'] };
    const credentials = t ? await caServerCredentials(options.ca, t.dnsNames) : grpc.ServerCredentials.createInsecure();
    const s = new CaServer(options, credentials);
    await s.up();
    return s;
  }

  /** `127.0.0.1:<port>` (what CA_ADDR would say). */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get isUp(): boolean {
    return this.server !== undefined;
  }

  get requests(): CaRequestRecord[] {
    return this.service.requests;
  }

  setFault(fault: CaFault | undefined): void {
    this.service.setFault(fault);
  }

  /** Opens the port (the same one again after `down()`). */
  async up(): Promise<void> {
    if (this.server) return;
    const server = new grpc.Server();
    this.service.register(server);
    this.port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`127.0.0.1:${this.port}`, this.credentials, (err, port) => (err ? reject(err) : resolve(port)));
    });
    this.server = server;
  }

  /** Closes the port and every connection at once (the CA "goes down"). */
  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    s?.forceShutdown();
  }

  async close(): Promise<void> {
    await this.down();
  }
}

/** A workload's files and CA options: a temp cwd with its token and the CA root where the agent looks. */
export interface WorkloadFixture {
  cwd: string;
  identity: string;
  token: string;
  /** The env the options were built from (seed env + these overrides). */
  env: Record<string, string>;
  options: CertOptions;
  dispose(): void;
}

/**
 * Builds a workload the way the agent sees it: seed pod env with POD_NAMESPACE/SERVICE_ACCOUNT,
 * JWT_POLICY=third-party-jwt, CA_ADDR=localhost:<port> (Istio maps `localhost` to the SAN
 * `istiod.istio-system.svc`), its token in `./var/run/secrets/tokens/istio-token` (registered
 * with the server unless `registerToken: false`), and the CA root in
 * `./var/run/secrets/istio/root-cert.pem`; then `certOptionsFromConfig`.
 */
export function workloadFixture(o: {
  server: CaServer;
  namespace?: string;
  serviceAccount?: string;
  env?: Record<string, string>;
  registerToken?: boolean;
  writeToken?: boolean;
  rootCertPem?: string;
}): WorkloadFixture {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-agent-ca-'));
  const namespace = o.namespace ?? 'jiuxi-ns';
  const serviceAccount = o.serviceAccount ?? 'default';
  const identity = `spiffe://cluster.local/ns/${namespace}/sa/${serviceAccount}`;
  const token = `token-${randomBytes(8).toString('hex')}`;
  if (o.registerToken !== false) o.server.options.tokens[token] = identity;
  if (o.writeToken !== false) {
    fs.mkdirSync(path.join(cwd, 'var/run/secrets/tokens'), { recursive: true });
    fs.writeFileSync(path.join(cwd, 'var/run/secrets/tokens/istio-token'), token);
  }
  fs.mkdirSync(path.join(cwd, 'var/run/secrets/istio'), { recursive: true });
  fs.writeFileSync(path.join(cwd, 'var/run/secrets/istio/root-cert.pem'), o.rootCertPem ?? o.server.options.ca.rootCertPem);
  const env = {
    POD_NAMESPACE: namespace,
    SERVICE_ACCOUNT: serviceAccount,
    JWT_POLICY: 'third-party-jwt',
    CA_ADDR: o.server.options.tls === false ? o.server.address : `localhost:${o.server.port}`,
    ...(o.env ?? {}),
  };
  const config = seedConfig({ cwd, extraEnv: env });
  return {
    cwd,
    identity,
    token,
    env,
    options: certOptionsFromConfig(config),
    dispose: () => fs.rmSync(cwd, { recursive: true, force: true }),
  };
}
