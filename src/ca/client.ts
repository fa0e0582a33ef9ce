/**
 * CaClient: one workload certificate per `issue()` call from an
 * `istio.v1.auth.IstioCertificateService` CA (istiod), SPEC §7.3 / §7.1.
 *
 * Each call generates a fresh key and CSR (`./csr.ts`), re-reads the bearer token and the CA
 * root file, dials the CA (TLS with that root and the expected ServerName/SAN, or plaintext
 * when the address ends in :15010), sends `CreateCertificate` with `authorization: Bearer
 * <token>` and `ClusterID` metadata, and checks the answer (`./chain.ts`). A fresh channel per
 * call keeps no connection open between renewals (hours apart) and picks up a rotated root.
 *
 * Exit paths: resolves with the certificate, or rejects with an AgentError whose code names
 * the cause and whose message names the file/address/setting involved: CA_TOKEN_UNREADABLE
 * (token file), CA_TLS_FAILED (root file, handshake, SAN mismatch), CA_UNAVAILABLE (dial,
 * deadline), CA_REJECTED (the CA answered with an error status: unauthenticated, CSR
 * rejected, internal error), CA_BAD_RESPONSE (unusable chain); an abort rejects with the
 * signal's reason. It never retries: the secret manager owns retry and backoff. Metrics count
 * every attempt that got as far as building a request.
 */
import fs from 'node:fs';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { AgentError, describeError } from '../errors.js';
import { checkCertChain, type CheckedChain } from './chain.js';
import { generateCsr } from './csr.js';
import { NO_CA_METRICS, type CaMetrics } from './metrics.js';
import { SYSTEM_ROOTS, describeCa, type CaClientOptions } from './options.js';
import { CREATE_CERTIFICATE_PATH, decodeCertificateResponse, encodeCertificateRequest, type IstioCertificateResponse } from './proto.js';
import { splitPemCertificates } from './pem.js';

export interface CaClientDeps {
  metrics?: CaMetrics;
  /** Deadline of one CreateCertificate call (default 30 s). */
  requestTimeoutMs?: number;
  now?: () => number;
}

export class CaClient {
  private readonly metrics: CaMetrics;
  private readonly timeoutMs: number;
  private readonly now: () => number;

  constructor(
    readonly options: CaClientOptions,
    deps: CaClientDeps = {},
  ) {
    this.metrics = deps.metrics ?? NO_CA_METRICS;
    this.timeoutMs = deps.requestTimeoutMs ?? 30_000;
    this.now = deps.now ?? Date.now;
  }

  /** `CA istiod.istio-system.svc:15012 (TLS, SAN istiod.istio-system.svc)`, for logs. */
  describe(): string {
    return describeCa(this.options);
  }

  /** Key + CSR + CreateCertificate + checks. Warnings (e.g. an unexpected identity) come back with it. */
  async issue(signal?: AbortSignal): Promise<CheckedChain> {
    const o = this.options;
    const csr = await generateCsr({ identity: o.identity, key: o.key, pkcs8: o.pkcs8 });
    signal?.throwIfAborted();
    const chain = await this.sign(csr.csrPem, signal);
    return checkCertChain({ chain, privateKeyPem: csr.privateKeyPem, publicKey: csr.publicKey, identity: o.identity, now: this.now(), caName: `CA ${o.address}` });
  }

  /** One CreateCertificate round trip: the PEM chain as the CA returned it. */
  async sign(csrPem: string, signal?: AbortSignal): Promise<string[]> {
    const o = this.options;
    const started = performance.now();
    this.metrics.csrSent();
    try {
      const metadata = new grpc.Metadata();
      if (o.tokenPath !== undefined) metadata.set('authorization', `Bearer ${await this.readToken(o.tokenPath)}`);
      metadata.set('ClusterID', o.clusterId);
      const tlsState: { error?: string } = {};
      const credentials = o.tls ? grpc.credentials.createSsl(await this.readRoot(), null, null, { checkServerIdentity: this.identityCheck(tlsState) }) : grpc.credentials.createInsecure();
      const channelOptions: grpc.ChannelOptions = o.tls ? { 'grpc.ssl_target_name_override': o.tls.serverName } : {};
      const client = new grpc.Client(o.address, credentials, channelOptions);
      try {
        const res = await this.call(client, csrPem, metadata, tlsState, signal);
        return res.cert_chain;
      } finally {
        client.close();
      }
    } catch (err) {
      this.metrics.csrFailed();
      throw err;
    } finally {
      this.metrics.csrLatency(performance.now() - started);
    }
  }

  private call(client: grpc.Client, csrPem: string, metadata: grpc.Metadata, tlsState: { error?: string }, signal?: AbortSignal): Promise<IstioCertificateResponse> {
    const o = this.options;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason as Error);
      const call = client.makeUnaryRequest(
        CREATE_CERTIFICATE_PATH,
        encodeCertificateRequest,
        decodeCertificateResponse,
        { csr: csrPem, validity_duration: o.ttlSeconds },
        metadata,
        { deadline: Date.now() + this.timeoutMs },
        (err, res) => {
          signal?.removeEventListener('abort', onAbort);
          if (signal?.aborted) return reject(signal.reason as Error);
          if (err) return reject(this.classify(err, tlsState));
          if (!res) return reject(new AgentError('CA_BAD_RESPONSE', `CA ${o.address} returned an empty response`));
          resolve(res);
        },
      );
      const onAbort = (): void => call.cancel();
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private async readToken(file: string): Promise<string> {
    const o = this.options;
    let token: string;
    try {
      token = (await fs.promises.readFile(file, 'utf8')).trim();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      throw new AgentError('CA_TOKEN_UNREADABLE', `cannot read the service account token ${file} (JWT_POLICY=${o.jwtPolicy}): ${code === 'ENOENT' ? 'no such file' : describeError(err)}`, { cause: err });
    }
    if (token === '') throw new AgentError('CA_TOKEN_UNREADABLE', `the service account token ${file} (JWT_POLICY=${o.jwtPolicy}) is empty`);
    return token;
  }

  /** The root bundle for the CA connection; null = the system roots. */
  private async readRoot(): Promise<Buffer | null> {
    const t = this.options.tls;
    if (!t || t.rootCertPath === SYSTEM_ROOTS) return null;
    let text: string;
    try {
      text = await fs.promises.readFile(t.rootCertPath, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      throw new AgentError('CA_TLS_FAILED', `cannot read the root certificate for the CA connection ${t.rootCertPath} (${t.rootCertSource}): ${code === 'ENOENT' ? 'no such file' : describeError(err)}`, { cause: err });
    }
    if (splitPemCertificates(text).length === 0) {
      throw new AgentError('CA_TLS_FAILED', `the root certificate file for the CA connection ${t.rootCertPath} (${t.rootCertSource}) holds no PEM certificate`);
    }
    return Buffer.from(text);
  }

  /** Node's hostname check, remembering a mismatch so the error can say which SAN was expected. */
  private identityCheck(state: { error?: string }): (host: string, cert: tls.PeerCertificate) => Error | undefined {
    return (host, cert) => {
      const err = tls.checkServerIdentity(host, cert);
      if (err) state.error = `the CA's certificate is not valid for ${host} (expected SAN ${host}; the certificate has ${cert.subjectaltname || 'no SAN'})`;
      return err;
    };
  }

  private classify(err: grpc.ServiceError, tlsState: { error?: string }): AgentError {
    const o = this.options;
    const addr = `CA ${o.address}`;
    const details = tidy(err.details || err.message);
    const codeName = grpc.status[err.code] ?? String(err.code);
    if (tlsState.error !== undefined) return new AgentError('CA_TLS_FAILED', `TLS handshake with ${addr} failed: ${tlsState.error}`, { cause: err });
    switch (err.code) {
      case grpc.status.UNAVAILABLE:
        if (o.tls && /certificate|ssl|tls|handshake|self[- ]signed|unable to (verify|get)/i.test(details)) {
          return new AgentError('CA_TLS_FAILED', `TLS handshake with ${addr} failed: its certificate is not trusted by the root ${o.tls.rootCertPath} (${o.tls.rootCertSource}): ${details}`, { cause: err });
        }
        return new AgentError('CA_UNAVAILABLE', `${addr} is unreachable: ${details}`, { cause: err });
      case grpc.status.DEADLINE_EXCEEDED:
        return new AgentError('CA_UNAVAILABLE', `${addr} did not answer within ${this.timeoutMs / 1000}s`, { cause: err });
      case grpc.status.UNAUTHENTICATED:
        return new AgentError(
          'CA_REJECTED',
          `${addr} rejected the request as unauthenticated (${details}); token ${o.tokenPath ?? '(none sent)'}, JWT_POLICY=${o.jwtPolicy}`,
          { cause: err },
        );
      case grpc.status.INVALID_ARGUMENT:
        return new AgentError('CA_REJECTED', `${addr} rejected the CSR for ${o.identity}: ${details}`, { cause: err });
      default:
        return new AgentError('CA_REJECTED', `${addr} returned an error: ${codeName}: ${details}`, { cause: err });
    }
  }
}

/** grpc-js wraps dial errors as `No connection established. Last error: Error: <x>. Resolution note: …`: keep `<x>`. */
function tidy(details: string): string {
  return details
    .replace(/^No connection established\. Last error: (Error: )?/, '')
    .replace(/\.?\s*Resolution note:[\s\S]*$/, '')
    .trim();
}
