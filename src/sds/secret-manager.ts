/**
 * SecretManager: holds the workload certificate the SDS server serves, and keeps it fresh
 * (Istio's SecretManagerClient, SPEC §7.3).
 *
 * Contract:
 * - `start()` fetches the first certificate at once, retrying with exponential backoff and
 *   jitter until it succeeds or the manager is closed; no failure escapes (it is logged with
 *   its cause and the next retry time).
 * - Rotation: a certificate of lifetime L (from its receipt to notAfter) is renewed when
 *   `graceRatio ± graceJitter` of L remains (0.5 by default: half-way). A failed renewal is
 *   retried with backoff, each delay also capped at a quarter of the remaining lifetime so a
 *   short-lived certificate gets several tries; meanwhile the current certificate is still
 *   served. Every failure logs the remaining lifetime. If it expires first, that is logged
 *   as an error, `certificate` becomes undefined (new SDS requests wait) and renewal goes on.
 * - `onUpdate` listeners run synchronously for every new certificate, with whether the root
 *   changed; `waitForCertificate` resolves with the first valid one.
 * - `close()` (idempotent) aborts an in-flight request, clears timers, rejects waiters.
 * States, logged as `A -> B` at debug: idle → issuing → valid → renewing → valid | expired …
 * → closed.
 */
import { X509Certificate } from 'node:crypto';
import type { IssuedCertificate, CheckedChain } from '../ca/chain.js';
import { NO_CA_METRICS, type CaMetrics } from '../ca/metrics.js';
import type { RotationOptions } from '../ca/options.js';
import { formatGoDuration } from '../go/duration.js';
import { AgentError, describeError } from '../errors.js';
import { sleep } from '../lifecycle/abort.js';
import { Backoff, type BackoffOptions } from '../lifecycle/backoff.js';
import type { Logger } from '../log.js';
import { ROOT_SECRET, WORKLOAD_SECRET } from './names.js';

/** Where certificates come from (the CaClient). */
export interface CertificateSource {
  describe(): string;
  issue(signal?: AbortSignal): Promise<CheckedChain>;
}

export interface SecretManagerOptions {
  source: CertificateSource;
  log: Logger;
  rotation: RotationOptions;
  /** Retry backoff (default 1 s, ×2, cap 30 s, ±20 %). */
  retry?: Partial<BackoffOptions>;
  /** Smallest retry delay when the cap by remaining lifetime applies (default 100 ms). */
  minRetryMs?: number;
  metrics?: CaMetrics;
  now?: () => number;
  random?: () => number;
}

export type ManagerState = 'idle' | 'issuing' | 'valid' | 'renewing' | 'expired' | 'closed';

export type UpdateListener = (cert: IssuedCertificate, change: { rootChanged: boolean; first: boolean }) => void;

/** Longest delay one setTimeout can hold (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Delay from `now` until `cert` should be renewed (Istio's rotateTime). */
export function rotationDelay(cert: IssuedCertificate, now: number, o: RotationOptions, random: () => number = Math.random): number {
  const spread = random() * o.graceJitter * (random() < 0.5 ? -1 : 1);
  const ratio = Math.min(1, Math.max(0, o.graceRatio + spread));
  const lifetime = cert.notAfter - cert.createdAt;
  return Math.max(0, cert.notAfter - ratio * lifetime - now);
}

export class SecretManager {
  private state: ManagerState = 'idle';
  private latestCert: IssuedCertificate | undefined;
  private rootNotAfter: number | undefined;
  private readonly listeners = new Set<UpdateListener>();
  private readonly waiters = new Set<{ resolve: (c: IssuedCertificate) => void; reject: (e: Error) => void }>();
  private readonly abort = new AbortController();
  private readonly backoff: Backoff;
  private readonly metrics: CaMetrics;
  private readonly now: () => number;
  private readonly random: () => number;
  private expiryTimer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly o: SecretManagerOptions) {
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
    this.metrics = o.metrics ?? NO_CA_METRICS;
    this.backoff = new Backoff({ initialMs: 1000, maxMs: 30_000, multiplier: 2, jitter: 0.2, random: this.random, ...o.retry });
    this.metrics.certExpiry(WORKLOAD_SECRET, () => this.latestCert?.notAfter);
    this.metrics.certExpiry(ROOT_SECRET, () => this.rootNotAfter);
  }

  get currentState(): ManagerState {
    return this.state;
  }

  /** The certificate to serve: the latest one, unless it has expired. */
  get certificate(): IssuedCertificate | undefined {
    const c = this.latestCert;
    return c && c.notAfter > this.now() ? c : undefined;
  }

  /** The latest certificate, expired or not. */
  get latest(): IssuedCertificate | undefined {
    return this.latestCert;
  }

  start(): void {
    if (this.loop || this.state === 'closed') return;
    this.loop = this.run().catch((err: unknown) => {
      // Not reachable by design (every failure is caught in obtain()); logged loudly if it ever is.
      this.o.log.error({ err }, `secret manager stopped unexpectedly: ${describeError(err)}`);
    });
  }

  onUpdate(listener: UpdateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with a valid certificate (at once if there is one); rejects if `signal` aborts or the manager closes. */
  waitForCertificate(signal?: AbortSignal): Promise<IssuedCertificate> {
    const c = this.certificate;
    if (c) return Promise.resolve(c);
    if (this.state === 'closed') return Promise.reject(new Error('secret manager closed'));
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (cert: IssuedCertificate) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(cert);
        },
        reject: (e: Error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      const onAbort = (): void => {
        this.waiters.delete(w);
        reject(signal?.reason as Error);
      };
      if (signal?.aborted) return reject(signal.reason as Error);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(w);
    });
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.setState('closed');
    this.abort.abort(new Error('secret manager closed'));
    clearTimeout(this.expiryTimer);
    for (const w of this.waiters) w.reject(new Error('secret manager closed'));
    this.waiters.clear();
    this.listeners.clear();
    await this.loop;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private setState(next: ManagerState): void {
    if (next === this.state) return;
    this.o.log.debug(`secret manager ${this.state} -> ${next}`);
    this.state = next;
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    this.setState('issuing');
    this.o.log.info(`requesting the workload certificate from ${this.o.source.describe()}`);
    while (!signal.aborted) {
      const cur = this.latestCert;
      if (cur) {
        const delay = rotationDelay(cur, this.now(), this.o.rotation, this.random);
        if (!(await sleepLong(delay, signal))) return;
        if (this.state === 'valid') this.setState('renewing');
        this.o.log.info(`rotating the workload certificate (serial ${cur.serialNumber}): it expires in ${remaining(cur.notAfter - this.now())}`);
      }
      await this.obtain(signal);
    }
  }

  /** Requests a certificate until one arrives (or the manager closes). */
  private async obtain(signal: AbortSignal): Promise<void> {
    for (let attempt = 1; !signal.aborted; attempt++) {
      let issued: CheckedChain;
      try {
        issued = await this.o.source.issue(signal);
      } catch (err) {
        if (signal.aborted) return;
        const cur = this.latestCert;
        const left = cur ? cur.notAfter - this.now() : undefined;
        let delay = this.backoff.next();
        if (left !== undefined && left > 0) delay = Math.min(delay, Math.max(this.o.minRetryMs ?? 100, Math.floor(left / 4)));
        const what = cur ? 'renewing the workload certificate' : 'getting the workload certificate';
        const keep =
          left === undefined ? 'Envoy has no certificate yet' : left > 0 ? `still serving the current one, which expires in ${remaining(left)}` : `the current one expired ${remaining(-left)} ago`;
        // An AgentError's message is complete; its cause (the gRPC error) would only repeat it.
        const why = err instanceof AgentError ? err.message : describeError(err);
        this.o.log.warn(`${what} failed (attempt ${attempt}): ${why}; ${keep}; retrying in ${remaining(delay)}`);
        this.metrics.csrRetried();
        if (!(await sleep(delay, signal))) return;
        continue;
      }
      this.install(issued);
      return;
    }
  }

  private install(issued: CheckedChain): void {
    const cert = issued.certificate;
    const previous = this.latestCert;
    for (const w of issued.warnings) this.o.log.warn(w);
    this.backoff.reset();
    this.latestCert = cert;
    try {
      this.rootNotAfter = Date.parse(new X509Certificate(cert.rootCertPem).validTo);
    } catch {
      this.rootNotAfter = undefined;
    }
    const next = rotationDelay(cert, this.now(), this.o.rotation, () => 0.5);
    this.o.log.info(
      `${previous ? 'renewed' : 'got'} the workload certificate for ${cert.identities.join(',') || '(no URI SAN)'}: serial ${cert.serialNumber}, ` +
        `valid until ${new Date(cert.notAfter).toISOString()} (${remaining(cert.notAfter - this.now())}); next rotation in about ${remaining(next)}`,
    );
    this.setState('valid');
    this.armExpiry(cert);
    const change = { rootChanged: previous?.rootCertPem !== cert.rootCertPem, first: previous === undefined };
    if (previous && change.rootChanged) this.o.log.info('the root certificate changed: pushing ROOTCA too');
    for (const w of this.waiters) w.resolve(cert);
    this.waiters.clear();
    for (const l of [...this.listeners]) {
      try {
        l(cert, change);
      } catch (err) {
        this.o.log.error({ err }, `certificate update listener failed: ${describeError(err)}`);
      }
    }
  }

  private armExpiry(cert: IssuedCertificate): void {
    clearTimeout(this.expiryTimer);
    const left = cert.notAfter - this.now();
    this.expiryTimer = setTimeout(
      () => {
        if (this.latestCert !== cert || this.state === 'closed') return;
        if (cert.notAfter > this.now()) return this.armExpiry(cert);
        this.setState('expired');
        this.o.log.error(`the workload certificate (serial ${cert.serialNumber}) expired at ${new Date(cert.notAfter).toISOString()} and could not be renewed; new SDS requests wait for a new one`);
      },
      Math.min(Math.max(0, left), MAX_TIMER_MS),
    );
    this.expiryTimer.unref();
  }
}

function remaining(ms: number): string {
  return formatGoDuration(ms >= 10_000 ? Math.round(ms / 1000) * 1000 : Math.round(ms));
}

/** `sleep` for delays beyond one timer's range. */
async function sleepLong(ms: number, signal: AbortSignal): Promise<boolean> {
  let left = ms;
  while (left > MAX_TIMER_MS) {
    if (!(await sleep(MAX_TIMER_MS, signal))) return false;
    left -= MAX_TIMER_MS;
  }
  return sleep(left, signal);
}
