/**
 * The Envoy double's server: one instance per process. Owns the lifecycle, the admin API, the
 * static listeners, the stats, the drain manager, and the test knobs (faults).
 *
 * Lifecycle (Envoy's `server.state`, logged as `A -> B`):
 *   PRE_INITIALIZING → (admin and listeners bound) → INITIALIZING → (init targets done) → LIVE
 * Init targets: the first CDS and LDS update when the bootstrap has `dynamic_resources`
 * (accepted or rejected, or the per-resource `initial_fetch_timeout` when non-zero), the
 * `ENVOY_DOUBLE_LIVE_DELAY_MS` timer, `ENVOY_DOUBLE_NEVER_LIVE`, and SDS secrets not yet received
 * (`addInitTarget`, used by sds.ts). Workers start when LIVE
 * (after `ENVOY_DOUBLE_WORKERS_DELAY_MS`): `listener_manager.workers_started` becomes 1 and the
 * listeners begin serving the connections waiting in their accept queues. LIVE reads DRAINING
 * while health checks are failed (`/healthcheck/fail`), exactly as Envoy computes it.
 *
 * xDS seam: `configUpdate(type, accepted)` is what an ADS client calls for each CDS/LDS
 * response it accepts or rejects; `markConfigReceived()` accepts both. `ENVOY_DOUBLE_FAKE_XDS`
 * and the `*_REJECTED` knobs drive the same path.
 *
 * Exit paths (all through `ProcessHost`, which records the exit): `shutdown(code)` (SIGTERM,
 * SIGINT, `/quitquitquit`, parent died, terminated by a hot-restart child) closes every socket
 * and exits promptly; `crash()` exits with the fault's code or signal without any cleanup.
 * `shutdown` is idempotent.
 *
 * Hot restart (unless `--disable-hot-restart`, or with base id and epoch both 0): see
 * hot-restart.ts. A parent that handed its admin to a child stops writing the state file (the
 * child's state is the one to observe).
 */
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { addressString, type Address, type Bootstrap, type ClusterSpec } from './bootstrap.js';
import type { EnvoyOptions } from './cli.js';
import { overlayControl, type Knobs } from './faults.js';
import { StaticListener } from './listeners.js';
import type { EnvoyLog } from './log.js';
import { compileStatsMatcher, compileTagExtractors, StatsStore } from './stats.js';
import { createAdminServer } from './admin.js';
import type { DoubleSds } from './sds.js';
import { HotRestart } from './hot-restart.js';

export type ServerState = 'LIVE' | 'DRAINING' | 'PRE_INITIALIZING' | 'INITIALIZING';
export const STATE_NUMBER: Record<ServerState, number> = { LIVE: 0, DRAINING: 1, PRE_INITIALIZING: 2, INITIALIZING: 3 };
const STATE_NAMES = Object.keys(STATE_NUMBER);

/** What the process around the server provides (main.ts): exits are recorded there. */
export interface ProcessHost {
  readonly startedAt: number;
  readonly cwd: string;
  readonly stateFile: string;
  readonly controlFile: string;
  /** `ENVOY_DOUBLE_ADMIN_LOG`: append `{pid, method, path, at}` per admin request ('' = off). */
  readonly adminLogFile?: string;
  exit(code: number): never;
  crash(signal: string, code: number): void;
}

export type XdsType = 'cds' | 'lds';
export type DrainType = 'ALL' | 'INBOUND';

export class EnvoyDouble {
  readonly stats: StatsStore;
  knobs: Knobs;
  private readonly envKnobs: Knobs;
  private control: Record<string, unknown> | null = null;
  private controlText: string | null | undefined;
  private initState: 'PRE_INITIALIZING' | 'INITIALIZING' | 'INITIALIZED' = 'PRE_INITIALIZING';
  private readonly initTargets = new Set<string>();
  private readonly fetchTimers = new Map<string, NodeJS.Timeout>();
  healthCheckFailed = false;
  workersStarted = false;
  private drainDirection: DrainType | undefined;
  readonly listeners: StaticListener[] = [];
  private admin: http.Server | undefined;
  adminBound: Address | undefined;
  readonly adminSockets = new Set<net.Socket>();
  private readonly agents = new Map<string, http.Agent>();
  private crashTimer: NodeJS.Timeout | undefined;
  private exiting = false;
  private lastState = '';
  private lastReported: ServerState | undefined;
  private readonly applied = { fake: false, cdsRejected: 0, ldsRejected: 0 };
  /** Extra top-level sections of the state file (e.g. `ads`, the ADS client's record). */
  readonly stateSections = new Map<string, () => unknown>();
  /** Run first on shutdown (e.g. closing the ADS client). */
  readonly shutdownHooks: Array<() => void> = [];
  /**
   * The SDS client (sds.ts, set by main.ts). An ADS client calls `sds?.requireSecretsIn(resources)`
   * before `configUpdate()` for resources that may reference SDS secrets, so LIVE waits for them.
   */
  sds: DoubleSds | undefined;
  private hotRestart: HotRestart | undefined;
  /** Handed admin to a hot-restart child: no more state-file writes. */
  private retired = false;

  constructor(
    readonly options: EnvoyOptions,
    readonly bootstrap: Bootstrap,
    readonly log: EnvoyLog,
    private readonly host: ProcessHost,
    knobs: Knobs,
  ) {
    this.envKnobs = knobs;
    this.knobs = knobs;
    const matcher = knobs.ignoreStatsMatcher ? () => true : compileStatsMatcher(bootstrap.statsConfig?.stats_matcher);
    this.stats = new StatsStore(matcher, compileTagExtractors(bootstrap.statsConfig, options.statsTags));
  }

  get uptimeSeconds(): number {
    return Math.floor((Date.now() - this.host.startedAt) / 1000);
  }

  /** The state Envoy reports (`/ready`, `/server_info`, `server.state`), after any override. */
  state(): ServerState {
    const o = this.knobs.state;
    if (o && STATE_NAMES.includes(o)) return o as ServerState;
    if (this.initState === 'PRE_INITIALIZING') return 'PRE_INITIALIZING';
    if (this.initState === 'INITIALIZING') return 'INITIALIZING';
    return this.healthCheckFailed ? 'DRAINING' : 'LIVE';
  }

  async start(): Promise<void> {
    const s = this.stats;
    const o = this.options;
    s.gauge('server.live').set(1);
    s.gauge('server.concurrency').set(o.concurrency);
    s.gauge('server.hot_restart_epoch').set(o.restartEpoch);
    s.gauge('server.version').set(parseInt('c0ffee', 16));
    for (const g of ['state', 'uptime', 'total_connections', 'parent_connections', 'memory_allocated', 'memory_heap_size', 'memory_physical_size', 'days_until_first_cert_expiring', 'stats_recent_lookups']) {
      s.gauge(`server.${g}`);
    }
    s.gauge('listener_manager.workers_started');
    s.gauge('listener_manager.total_listeners_warming');
    s.gauge('listener_manager.total_listeners_draining');
    s.counter('listener_manager.listener_stopped');
    if (this.knobs.statsFlushMs > 0) {
      setInterval(() => this.refreshServerStats(), this.knobs.statsFlushMs).unref();
      s.beforeRender = () => this.refreshServerStats(['uptime']);
    } else {
      s.beforeRender = () => this.refreshServerStats();
    }

    // Hot restart runs unless disabled, as in Envoy, except with Envoy's defaults (base id 0,
    // epoch 0): tests start many such doubles at once, which would share one domain socket.
    if (!o.disableHotRestart && (o.baseId !== 0 || o.restartEpoch !== 0)) {
      this.hotRestart = new HotRestart(o.baseId, o.restartEpoch, this.log, {
        shutdownAdmin: () => this.shutdownAdminForChild(),
        releaseListener: (address) => this.releaseListenerForChild(address),
        drainListeners: () => this.drainForChild(),
        terminate: () => this.shutdown(0),
      });
      await this.hotRestart.start();
      await this.hotRestart.shutdownParentAdmin();
    }
    this.admin = createAdminServer(this);
    await this.bindAdmin(this.admin, this.hotRestart?.hasParent === true);

    const b = this.bootstrap;
    this.log.info('upstream', `loading ${b.clusters.size} cluster(s)`, 'source/common/upstream/cluster_manager_impl.cc:249');
    for (const c of b.clusters.values()) {
      s.counter('cluster_manager.cluster_added').inc();
      s.gauge(`cluster.${c.statName}.membership_total`).set(c.endpoints.length);
      s.gauge(`cluster.${c.statName}.membership_healthy`).set(c.endpoints.length);
      s.counter(`cluster.${c.statName}.upstream_rq_total`);
      s.counter(`cluster.${c.statName}.upstream_cx_total`);
      s.counter(`cluster.${c.statName}.upstream_cx_connect_fail`);
    }
    s.gauge('cluster_manager.active_clusters').set(b.clusters.size);
    s.gauge('cluster_manager.warming_clusters').set(0);
    if (b.xds?.cds) for (const c of ['update_attempt', 'update_success', 'update_rejected', 'update_failure', 'init_fetch_timeout']) s.counter(`cluster_manager.cds.${c}`);
    if (b.xds?.lds) for (const c of ['update_attempt', 'update_success', 'update_rejected', 'update_failure', 'init_fetch_timeout']) s.counter(`listener_manager.lds.${c}`);

    this.log.info('config', `loading ${b.listeners.length} listener(s)`, 'source/server/configuration_impl.cc:131');
    for (const spec of b.listeners) {
      const l = new StaticListener(spec, {
        stats: s,
        log: this.log,
        concurrency: o.concurrency,
        clusters: b.clusters,
        draining: (x) => this.draining(x),
        slowDrain: () => this.knobs.slowDrain,
        agentFor: (c) => this.agentFor(c),
      });
      if (!spec.address) continue;
      const taken = (await this.hotRestart?.takeListenSocket(addressString(spec.address))) === true;
      await bindRetrying(() => l.bind(), taken);
      this.listeners.push(l);
      s.counter('listener_manager.listener_added').inc();
      s.counter('listener_manager.listener_create_success').inc(o.concurrency);
      this.log.debug('config', `listener '${spec.name}' bound to ${addressString(l.bound as Address)}`, 'source/common/listener_manager/listener_manager_impl.cc:560');
    }
    s.gauge('listener_manager.total_listeners_active').set(this.listeners.length);
    s.gauge('server.total_connections');

    this.watchControl();
    this.scheduleCrash();
    this.log.info('main', 'starting main dispatch loop', 'source/server/server.cc:1023');
    this.setInit('INITIALIZING');
    this.log.info('upstream', 'cm init: all clusters initialized', 'source/common/upstream/cluster_manager_impl.cc:246');
    this.log.info('main', 'all clusters initialized. initializing init manager', 'source/server/server.cc:968');

    const xds = b.xds;
    if (xds) {
      for (const type of ['cds', 'lds'] as const) {
        if (!xds[type]) continue;
        this.initTargets.add(type);
        const timeoutMs = type === 'cds' ? xds.cdsInitialFetchTimeoutMs : xds.ldsInitialFetchTimeoutMs;
        if (timeoutMs > 0) {
          this.fetchTimers.set(
            type,
            setTimeout(() => {
              if (!this.initTargets.has(type)) return;
              this.stats.counter(`${type === 'cds' ? 'cluster_manager.cds' : 'listener_manager.lds'}.init_fetch_timeout`).inc();
              this.log.warn('config', `${type}: initial fetch timed out after ${timeoutMs}ms`, 'source/extensions/config_subscription/grpc/grpc_subscription_impl.cc:118');
              this.initTargets.delete(type);
              this.maybeCompleteInit();
            }, timeoutMs),
          );
        }
      }
    }
    if (this.knobs.liveDelayMs > 0) {
      this.initTargets.add('live-delay');
      setTimeout(() => {
        this.initTargets.delete('live-delay');
        this.maybeCompleteInit();
      }, this.knobs.liveDelayMs);
    }
    if (this.knobs.neverLive) this.initTargets.add('never-live');
    this.applyKnobs(this.knobs, undefined);
    this.maybeCompleteInit();
    this.writeState();
  }

  private async bindAdmin(server: http.Server, fromParent: boolean): Promise<void> {
    const addr = this.bootstrap.admin;
    await bindRetrying(() => new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new Error(`cannot bind '${addressString(addr)}': ${err.code === 'EADDRINUSE' ? 'Address already in use' : err.message}`));
      };
      server.once('error', onError);
      const done = (): void => {
        server.off('error', onError);
        resolve();
      };
      if (addr.kind === 'pipe') server.listen({ path: addr.path }, done);
      else server.listen({ host: addr.host, port: addr.port, ipv6Only: addr.family === 6 && !addr.ipv4Compat }, done);
    }), fromParent);
    const a = server.address();
    this.adminBound = addr.kind === 'pipe' || typeof a === 'string' || a === null ? addr : { ...addr, port: a.port };
    this.log.info('main', `admin address: ${addressString(this.adminBound)}`, 'source/server/admin/admin.cc:71');
    if (this.options.adminAddressPath !== '') {
      try {
        fs.writeFileSync(this.options.adminAddressPath, addressString(this.adminBound));
      } catch {
        this.log.critical('main', `cannot open admin address output file ${this.options.adminAddressPath} for writing.`, 'source/server/admin/admin.cc:76');
      }
    }
  }

  private setInit(next: 'INITIALIZING' | 'INITIALIZED'): void {
    const before = this.state();
    this.initState = next;
    this.noteState(before);
  }

  /** Logs a reported-state change as `A -> B` (debug level, as a transition, never a poll). */
  private noteState(before: ServerState): void {
    const after = this.state();
    if (after !== before && after !== this.lastReported) {
      this.log.debug('main', `server state ${before} -> ${after}`);
      this.lastReported = after;
    }
    if (this.knobs.statsFlushMs === 0) this.refreshServerStats();
    this.writeState();
  }

  private maybeCompleteInit(): void {
    if (this.initState !== 'INITIALIZING' || this.initTargets.size > 0 || this.exiting) return;
    this.log.info('main', 'all dependencies initialized. starting workers', 'source/server/server.cc:1004');
    this.setInit('INITIALIZED');
    // Envoy updates the server stats as soon as initialization is done, whatever the flush interval.
    this.refreshServerStats();
    const start = (): void => this.startWorkers();
    if (this.knobs.workersDelayMs > 0) setTimeout(start, this.knobs.workersDelayMs);
    else start();
  }

  private startWorkers(): void {
    if (this.workersStarted || this.exiting) return;
    this.workersStarted = true;
    this.stats.gauge('listener_manager.workers_started').set(1);
    for (const l of this.listeners) l.startAccepting();
    this.log.info('main', `starting ${this.options.concurrency} worker(s)`, 'source/common/listener_manager/listener_manager_impl.cc:1090');
    this.writeState();
    // Envoy's startWorkers: the parent may stop listening and drain now.
    this.hotRestart?.childStartedWorkers(this.knobs.keepParent ? undefined : this.options.parentShutdownTimeS);
  }

  // ---- hot restart, parent side --------------------------------------------------------------

  private shutdownAdminForChild(): number {
    this.log.warn('main', 'shutting down admin due to child startup', 'source/server/server.cc:1071');
    this.retired = true;
    this.admin?.close();
    // "If we still have a parent, it should be terminated now that we have a child."
    this.hotRestart?.terminateParent();
    return this.host.startedAt;
  }

  private releaseListenerForChild(address: string): boolean {
    const l = this.listeners.find((x) => x.spec.address && addressString(x.spec.address) === address && !x.stopped);
    if (!l) return false;
    l.stop();
    this.log.info('main', `hot restart: passed listener '${l.spec.name}' (${address}) to the child`, 'source/server/hot_restarting_parent.cc:60');
    return true;
  }

  private drainForChild(): void {
    this.log.info('main', 'hot restart: child is serving; stopping listeners and draining', 'source/server/server.cc:960');
    this.stopListeners('ALL');
    this.drainListeners({ inboundOnly: false, graceful: true, skipExit: true });
  }

  private refreshServerStats(only?: string[]): void {
    const s = this.stats;
    const want = (n: string): boolean => !only || only.includes(n);
    if (want('state')) s.gauge('server.state').set(STATE_NUMBER[this.state()]);
    if (want('uptime')) s.gauge('server.uptime').set(this.uptimeSeconds);
    if (want('total_connections')) s.gauge('server.total_connections').set(this.listeners.reduce((n, l) => n + l.activeConnections, 0));
    if (want('memory')) {
      const mem = process.memoryUsage();
      s.gauge('server.memory_allocated').set(mem.heapUsed);
      s.gauge('server.memory_heap_size').set(mem.heapTotal);
      s.gauge('server.memory_physical_size').set(mem.rss);
    }
  }

  // ---- xDS seam ------------------------------------------------------------------------------

  /**
   * One CDS or LDS response handled: counts `update_attempt` and `update_success` or
   * `update_rejected`, and completes that resource's init target (Envoy completes its initial
   * fetch on a rejected response too). Ignored for a type the bootstrap does not subscribe to.
   */
  configUpdate(type: XdsType, accepted: boolean, detail = ''): void {
    const xds = this.bootstrap.xds;
    if (!xds?.[type] || this.exiting) return;
    const before = this.state();
    const prefix = type === 'cds' ? 'cluster_manager.cds' : 'listener_manager.lds';
    this.stats.counter(`${prefix}.update_attempt`).inc();
    this.stats.counter(`${prefix}.${accepted ? 'update_success' : 'update_rejected'}`).inc();
    if (accepted) {
      this.stats.gauge(`${prefix}.update_time`).set(Date.now());
      this.log.info('upstream', `${type}: add 0 ${type === 'cds' ? 'cluster' : 'listener'}(s), remove 0 ${type === 'cds' ? 'cluster' : 'listener'}(s)`, 'source/common/upstream/cds_api_helper.cc:32');
    } else {
      const url = type === 'cds' ? 'type.googleapis.com/envoy.config.cluster.v3.Cluster' : 'type.googleapis.com/envoy.config.listener.v3.Listener';
      this.log.warn('config', `gRPC config for ${url} rejected: ${detail || 'rejected by the envoy double'}`, 'source/extensions/config_subscription/grpc/grpc_subscription_impl.cc:138');
    }
    clearTimeout(this.fetchTimers.get(type));
    this.initTargets.delete(type);
    this.maybeCompleteInit();
    this.noteState(before);
  }

  /**
   * An extra init target (e.g. `sds:default`): LIVE waits until `completeInitTarget(name)`.
   * Ignored once initialized, as Envoy's init manager (later secrets only warm their resource).
   */
  addInitTarget(name: string): void {
    if (this.initState === 'INITIALIZED' || this.exiting) return;
    this.initTargets.add(name);
    this.writeState();
  }

  completeInitTarget(name: string): void {
    if (!this.initTargets.delete(name)) return;
    const before = this.state();
    this.maybeCompleteInit();
    this.noteState(before);
  }

  /** The first CDS and LDS arrived and were accepted. */
  markConfigReceived(): void {
    this.configUpdate('cds', true);
    this.configUpdate('lds', true);
  }

  // ---- admin actions -------------------------------------------------------------------------

  failHealthcheck(fail: boolean): void {
    const before = this.state();
    this.healthCheckFailed = fail;
    this.stats.gauge('server.live').set(fail ? 0 : 1);
    this.noteState(before);
  }

  /** Is a drain under way that covers this listener (health-check failure drains DEFAULT listeners too)? */
  draining(l: StaticListener): boolean {
    if (this.healthCheckFailed) return true;
    return this.drainDirection === 'ALL' || (this.drainDirection === 'INBOUND' && l.spec.direction === 'INBOUND');
  }

  /**
   * POST /drain_listeners, as released Envoy: `skip_exit` without `graceful` → 400;
   * `graceful` starts the drain sequence (once; later calls are no-ops) over `--drain-time-s`,
   * after which the covered listeners stop listening unless `skip_exit`; without `graceful` the
   * covered listeners stop at once. Envoy itself keeps running either way.
   */
  drainListeners(q: { inboundOnly: boolean; graceful: boolean; skipExit: boolean }): { status: number; body: string } {
    if (q.skipExit && !q.graceful) return { status: 400, body: 'skip_exit requires graceful\n' };
    const type: DrainType = q.inboundOnly ? 'INBOUND' : 'ALL';
    if (q.graceful) {
      if (this.drainDirection === undefined) {
        this.drainDirection = type;
        const ms = this.options.drainTimeS * 1000;
        this.log.info('main', `starting ${this.options.drainStrategy} drain sequence of ${type === 'INBOUND' ? 'inbound' : 'all'} listeners over ${this.options.drainTimeS}s`, 'source/server/drain_manager_impl.cc:101');
        for (const l of this.listeners) if (this.draining(l)) l.drainStarted();
        setTimeout(() => {
          this.log.info('main', 'drain sequence complete', 'source/server/drain_manager_impl.cc:120');
          if (!q.skipExit) this.stopListeners(type);
        }, ms).unref();
        this.writeState();
      }
    } else {
      this.stopListeners(type);
    }
    return { status: 200, body: 'OK\n' };
  }

  stopListeners(type: DrainType): void {
    for (const l of this.listeners) {
      if (l.stopped || (type === 'INBOUND' && l.spec.direction !== 'INBOUND')) continue;
      l.stop();
      this.stats.counter('listener_manager.listener_stopped').inc();
      this.log.info('config', `listener '${l.spec.name}' stopped accepting connections`, 'source/common/listener_manager/listener_manager_impl.cc:1140');
    }
    this.writeState();
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  /** Closes every socket and exits with `code`. Idempotent; never returns once started. */
  shutdown(code: number): void {
    if (this.exiting) return;
    this.exiting = true;
    this.log.info('main', 'shutting down server instance', 'source/server/server.cc:1060');
    for (const hook of this.shutdownHooks) hook();
    this.hotRestart?.close();
    for (const l of this.listeners) l.destroy();
    this.admin?.close();
    for (const s of this.adminSockets) s.destroy();
    for (const a of this.agents.values()) a.destroy();
    this.log.info('main', 'main dispatch loop exited', 'source/server/server.cc:1037');
    this.log.info('main', 'exiting', 'source/server/server.cc:1049');
    this.writeState(true);
    this.host.exit(code);
  }

  private crash(): void {
    const k = this.knobs;
    for (const line of k.stderrOnCrash) this.log.raw(`${line}\n`);
    this.host.crash(k.exitSignal, k.exitCode);
  }

  private scheduleCrash(): void {
    clearTimeout(this.crashTimer);
    this.crashTimer = undefined;
    if (this.knobs.crashAfterMs < 0 || this.exiting) return;
    const delay = Math.max(0, this.host.startedAt + this.knobs.crashAfterMs - Date.now());
    this.crashTimer = setTimeout(() => this.crash(), delay);
  }

  private agentFor(c: ClusterSpec): http.Agent {
    let a = this.agents.get(c.name);
    if (!a) {
      a = new http.Agent({ keepAlive: true, maxSockets: 64 });
      this.agents.set(c.name, a);
    }
    return a;
  }

  /** `ENVOY_DOUBLE_ADMIN_LOG`: one JSON line per admin request received (never fails the request). */
  recordAdminCall(method: string, path: string): void {
    const file = this.host.adminLogFile ?? '';
    if (file === '') return;
    try {
      fs.appendFileSync(file, `${JSON.stringify({ pid: process.pid, method, path, at: new Date().toISOString() })}\n`);
    } catch {
      // an unwritable log must not change how "Envoy" behaves
    }
  }

  // ---- knobs and control file ----------------------------------------------------------------

  private watchControl(): void {
    const file = this.host.controlFile;
    if (file === '') return;
    const read = (): void => {
      let text: string | null;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch {
        text = null;
      }
      if (text === this.controlText) return;
      this.controlText = text;
      let control: Record<string, unknown> = {};
      if (text !== null && text.trim() !== '') {
        try {
          const parsed: unknown = JSON.parse(text);
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
          control = parsed as Record<string, unknown>;
        } catch (err) {
          this.log.warn('misc', `envoy double: ignoring control file ${file}: ${(err as Error).message}`);
          return;
        }
      }
      const prev = this.knobs;
      this.control = control;
      this.knobs = overlayControl(this.envKnobs, control);
      if (this.initState !== 'PRE_INITIALIZING') this.applyKnobs(this.knobs, prev);
      this.writeState();
    };
    read();
    fs.watchFile(file, { interval: 50, persistent: false }, read);
  }

  /** Acts on knob changes that have effects beyond the next request (init targets, xDS, crash). */
  private applyKnobs(next: Knobs, prev: Knobs | undefined): void {
    const before = this.state();
    if (prev && prev.neverLive !== next.neverLive) {
      if (next.neverLive && this.initState === 'INITIALIZING') this.initTargets.add('never-live');
      if (!next.neverLive) this.initTargets.delete('never-live');
    }
    if (next.fakeXds && !this.applied.fake) {
      this.applied.fake = true;
      this.markConfigReceived();
    }
    while (this.applied.cdsRejected < next.cdsRejected) {
      this.applied.cdsRejected++;
      this.configUpdate('cds', false, 'fault injected by the envoy double');
    }
    while (this.applied.ldsRejected < next.ldsRejected) {
      this.applied.ldsRejected++;
      this.configUpdate('lds', false, 'fault injected by the envoy double');
    }
    if (!prev || prev.crashAfterMs !== next.crashAfterMs) this.scheduleCrash();
    this.maybeCompleteInit();
    this.noteState(before);
  }

  // ---- state file ----------------------------------------------------------------------------

  /** Writes `ENVOY_DOUBLE_STATE` atomically (tmp + rename) when its content changed. */
  writeState(exited = false): void {
    const file = this.host.stateFile;
    if (file === '' || this.retired) return;
    const addr = (a: Address | undefined): Record<string, unknown> | null =>
      a === undefined ? null : a.kind === 'pipe' ? { path: a.path } : { address: a.host, port: a.port };
    const listeners: Record<string, unknown> = {};
    for (const l of this.listeners) listeners[l.spec.name] = { ...addr(l.bound), stopped: l.stopped, direction: l.spec.direction };
    const data = {
      pid: process.pid,
      state: exited ? 'EXITED' : this.state(),
      workersStarted: this.workersStarted,
      healthCheckFailed: this.healthCheckFailed,
      draining: this.drainDirection ?? null,
      admin: addr(this.adminBound),
      listeners,
      control: this.control,
      ...Object.fromEntries([...this.stateSections].map(([k, f]) => [k, f()])),
    };
    const text = JSON.stringify(data);
    if (text === this.lastState) return;
    this.lastState = text;
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, text);
      fs.renameSync(tmp, file);
    } catch (err) {
      this.log.warn('misc', `envoy double: cannot write state file ${file}: ${(err as Error).message}`);
    }
  }
}

/**
 * Binds; when the address was just released by a hot-restart parent, retries EADDRINUSE for
 * up to 2 s (the parent closes its socket before it replies, so this is a safety net).
 */
async function bindRetrying(bind: () => Promise<void>, released: boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  for (;;) {
    try {
      await bind();
      return;
    } catch (err) {
      if (!released || !/Address already in use/.test((err as Error).message) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
