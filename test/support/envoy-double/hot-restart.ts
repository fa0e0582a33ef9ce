/**
 * The double's hot restart (`--restart-epoch`, without `--disable-hot-restart`), shaped like
 * Envoy's HotRestartingParent/HotRestartingChild (source/server/hot_restarting_*.cc):
 *
 * - Every epoch listens as a parent on an abstract Unix socket keyed by base id and epoch
 *   (`@envoy_double_domain_socket_parent_<base>_<epoch>`; Envoy: `@envoy_domain_socket_parent_…`).
 *   A name already in use is Envoy's fatal "unable to bind domain socket … (see --base-id option)".
 * - Epoch n>0 connects to epoch n-1 while it starts and, in Envoy's order:
 *   1. `shutdown_admin`: the parent closes its admin listener (and asks its own parent, if
 *      any, to terminate); the child then binds admin;
 *   2. `pass_listen_socket <address>` per listener: Envoy duplicates the parent's socket (both
 *      accept until step 3). Node 20 can neither pass descriptors nor set SO_REUSEPORT, so here
 *      the parent closes that listener (its accepted connections stay open) and the child binds
 *      the address right after: a connection attempted in that sub-millisecond gap is refused,
 *      and connections accepted by the child wait in its queue until its workers start;
 *   3. `drain_listeners` once the child's workers start: the parent stops every listener and
 *      starts a graceful drain of all of them (`connection: close`, idle HTTP closed);
 *   4. `terminate` `--parent-shutdown-time-s` later (or when the child shuts down): the parent
 *      shuts down, closing whatever is still open.
 * - No parent to connect to (it died, or epoch n-1 never ran with hot restart): the child
 *   logs it and starts on its own, as Envoy's child does when its parent is gone.
 *
 * Messages are JSON lines; requests that expect a reply carry an `id`.
 */
import net from 'node:net';
import type { EnvoyLog } from './log.js';

export interface HotRestartParentHandlers {
  /** Close the admin listener; returns this epoch's original start time (ms since epoch). */
  shutdownAdmin(): number;
  /** Stop listening on `address` (as configured); false when no listener has it. */
  releaseListener(address: string): boolean;
  /** The child serves: stop every listener, drain all connections gracefully. */
  drainListeners(): void;
  /** Shut down (exit 0). */
  terminate(): void;
}

interface Message {
  type: 'shutdown_admin' | 'pass_listen_socket' | 'drain_listeners' | 'terminate';
  id?: number;
  address?: string;
  originalStartTime?: number;
  released?: boolean;
}

export function domainSocketName(baseId: number, epoch: number): string {
  return `\0envoy_double_domain_socket_parent_${baseId}_${epoch}`;
}

/** Splits a stream into JSON-line messages. */
function onMessages(socket: net.Socket, handle: (m: Message) => void): void {
  let buf = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        handle(JSON.parse(line) as Message);
      } catch {
        // a malformed line from a peer is ignored, as Envoy drops unparseable messages
      }
    }
  });
}

export class HotRestart {
  private server: net.Server | undefined;
  private readonly children = new Set<net.Socket>();
  private parent: net.Socket | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, (m: Message) => void>();
  private terminateTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly baseId: number,
    readonly epoch: number,
    private readonly log: EnvoyLog,
    private readonly handlers: HotRestartParentHandlers,
  ) {}

  get hasParent(): boolean {
    return this.parent !== undefined && !this.parent.destroyed;
  }

  /** Binds this epoch's parent socket, then (epoch > 0) connects to the previous epoch. */
  async start(): Promise<void> {
    const server = net.createServer((socket) => this.serveChild(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(new Error(`unable to bind domain socket with base_id=${this.baseId}, id=${this.epoch}, errno=${err.errno ?? 0} (see --base-id option)`));
      });
      server.listen({ path: domainSocketName(this.baseId, this.epoch) }, () => resolve());
    });
    server.on('error', () => undefined);
    this.server = server;
    if (this.epoch === 0) return;
    const parent = net.connect({ path: domainSocketName(this.baseId, this.epoch - 1) });
    const connected = await new Promise<boolean>((resolve) => {
      parent.once('connect', () => resolve(true));
      parent.once('error', () => resolve(false));
    });
    if (!connected) {
      parent.destroy();
      this.log.warn('main', `hot restart: no parent process for epoch ${this.epoch - 1}; starting without one`, 'source/server/hot_restarting_child.cc:57');
      return;
    }
    parent.on('error', () => undefined);
    parent.once('close', () => {
      for (const reply of this.pending.values()) reply({ type: 'terminate' });
      this.pending.clear();
    });
    onMessages(parent, (m) => {
      const reply = m.id !== undefined ? this.pending.get(m.id) : undefined;
      if (m.id !== undefined) this.pending.delete(m.id);
      reply?.(m);
    });
    this.parent = parent;
  }

  // ---- child side ----------------------------------------------------------------------------

  private request(m: Message): Promise<Message | undefined> {
    const parent = this.parent;
    if (!parent || parent.destroyed) return Promise.resolve(undefined);
    const id = this.nextId++;
    return new Promise((resolve) => {
      // A parent that does not answer within 5 s is treated as gone (Envoy would abort instead).
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.log.warn('main', `hot restart: parent epoch ${this.epoch - 1} did not answer ${m.type}; going on without it`);
        resolve(undefined);
      }, 5000);
      this.pending.set(id, (r) => {
        clearTimeout(timer);
        resolve(r.type === m.type ? r : undefined);
      });
      parent.write(`${JSON.stringify({ ...m, id })}\n`);
    });
  }

  private send(m: Message): void {
    if (this.parent && !this.parent.destroyed) this.parent.write(`${JSON.stringify(m)}\n`);
  }

  /** Step 1: the parent closes its admin listener. */
  async shutdownParentAdmin(): Promise<void> {
    const r = await this.request({ type: 'shutdown_admin' });
    if (r) this.log.info('main', `hot restart: parent epoch ${this.epoch - 1} shut down its admin (started ${new Date(r.originalStartTime ?? 0).toISOString()})`, 'source/server/server.cc:602');
  }

  /** Step 2: true when the parent released `address` (the caller binds it, retrying briefly). */
  async takeListenSocket(address: string): Promise<boolean> {
    const r = await this.request({ type: 'pass_listen_socket', address });
    return r?.released === true;
  }

  /** Steps 3 and 4: the child's workers started (no termination with the KEEP_PARENT fault). */
  childStartedWorkers(parentShutdownTimeS: number | undefined): void {
    if (!this.hasParent) return;
    this.send({ type: 'drain_listeners' });
    if (parentShutdownTimeS === undefined) {
      this.log.warn('main', `envoy double: never terminating parent epoch ${this.epoch - 1} (ENVOY_DOUBLE_KEEP_PARENT)`);
      return;
    }
    this.log.info('main', `hot restart: parent epoch ${this.epoch - 1} draining; terminating it in ${parentShutdownTimeS}s`, 'source/server/drain_manager_impl.cc:140');
    this.terminateTimer = setTimeout(() => this.terminateParent(), parentShutdownTimeS * 1000);
    this.terminateTimer.unref();
  }

  terminateParent(): void {
    clearTimeout(this.terminateTimer);
    if (!this.hasParent) return;
    this.log.info('main', `hot restart: terminating parent epoch ${this.epoch - 1}`, 'source/server/hot_restarting_child.cc:98');
    this.send({ type: 'terminate' });
    this.parent?.end();
  }

  // ---- parent side ---------------------------------------------------------------------------

  private serveChild(socket: net.Socket): void {
    this.children.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => this.children.delete(socket));
    onMessages(socket, (m) => {
      const reply = (r: Message): void => {
        if (!socket.destroyed) socket.write(`${JSON.stringify({ ...r, id: m.id })}\n`);
      };
      switch (m.type) {
        case 'shutdown_admin':
          reply({ type: 'shutdown_admin', originalStartTime: this.handlers.shutdownAdmin() });
          break;
        case 'pass_listen_socket':
          reply({ type: 'pass_listen_socket', released: this.handlers.releaseListener(m.address ?? '') });
          break;
        case 'drain_listeners':
          this.handlers.drainListeners();
          break;
        case 'terminate':
          this.handlers.terminate();
          break;
      }
    });
  }

  /** On shutdown: tell the parent (Envoy's shutdown does), close every socket. Idempotent. */
  close(): void {
    this.terminateParent();
    clearTimeout(this.terminateTimer);
    this.server?.close();
    this.server = undefined;
    for (const s of this.children) s.destroy();
    this.parent?.destroy();
  }
}
