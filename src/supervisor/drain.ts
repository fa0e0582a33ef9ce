/**
 * The drain half of termination (SPEC §5.2): `POST /drain_listeners` with Istio's parameters,
 * then the wait — a fixed `terminationDrainMs`, or with EXIT_ON_ZERO_ACTIVE_CONNECTIONS
 * `minimumDrainMs` and then a poll of the active downstream connections every
 * `pollIntervalMs` until none are left, the stats body is empty, or 5 polls in a row failed.
 * Every wait ends early when `until` aborts (Envoy exited, a second signal, the deadline).
 * Admin failures are logged, never fatal.
 */
import type { EnvoyAdminClient } from '../envoy/admin.js';
import type { Logger } from '../log.js';
import { formatGoDuration } from '../go/duration.js';
import { sleepOn, type Clock } from './clock.js';

export interface DrainSettings {
  proxyType: 'sidecar' | 'router';
  terminationDrainMs: number;
  exitOnZeroActiveConnections: boolean;
  minimumDrainMs: number;
  /** Optional bound on the whole termination sequence (DRAIN_DEADLINE). */
  drainDeadlineMs?: number;
  /** Listener ports excluded from the active-connection count (ENVOY_STATUS_PORT, ENVOY_PROMETHEUS_PORT). */
  excludedPorts: number[];
  /** Poll period and timeout for active connections (SPEC: 1 s and 2 s). */
  pollIntervalMs?: number;
  pollTimeoutMs?: number;
}

/** The admin calls the supervisor makes (EnvoyAdminClient, or a fake in unit tests). */
export type SupervisorAdmin = Pick<EnvoyAdminClient, 'post' | 'stats' | 'serverInfo' | 'resetConnections'>;

export interface DrainContext {
  admin: SupervisorAdmin;
  log: Logger;
  clock: Clock;
  settings: DrainSettings;
}

/** Consecutive failed active-connection polls that end the wait (SPEC §5.2). */
export const MAX_FAILED_POLLS = 5;

export const ACTIVE_CONNECTIONS_FILTER = 'downstream_cx_active$';

/** POST /drain_listeners (`inboundonly&graceful`, `graceful` for routers; `&skip_exit` for POST /drain). */
export async function drainListeners(ctx: DrainContext, skipExit: boolean, signal?: AbortSignal): Promise<void> {
  const params = ctx.settings.proxyType === 'router' ? ['graceful'] : ['inboundonly', 'graceful'];
  if (skipExit) params.push('skip_exit');
  const path = `/drain_listeners?${params.join('&')}`;
  try {
    await ctx.admin.post(path, 2000, signal);
    ctx.log.info(`POST ${path}: draining`);
  } catch (err) {
    ctx.log.warn(`POST ${path} failed: ${(err as Error).message}`);
  }
}

/** Waits as SPEC §5.2 says, or until `until` aborts. */
export async function waitForDrain(ctx: DrainContext, until: AbortSignal): Promise<void> {
  const d = ctx.settings;
  if (!d.exitOnZeroActiveConnections) {
    ctx.log.info(`waiting ${formatGoDuration(d.terminationDrainMs)} for Envoy to drain`);
    await sleepOn(ctx.clock, d.terminationDrainMs, until);
    return;
  }
  ctx.log.info(`waiting ${formatGoDuration(d.minimumDrainMs)}, then until Envoy has no active connections`);
  if (!(await sleepOn(ctx.clock, d.minimumDrainMs, until))) return;
  let failures = 0;
  for (;;) {
    if (until.aborted) return;
    try {
      const { body } = await ctx.admin.stats(ACTIVE_CONNECTIONS_FILTER, d.pollTimeoutMs ?? 2000, until);
      if (body.trim() === '') {
        ctx.log.info('no active-connection stats: done draining');
        return;
      }
      const active = activeConnections(body, d.excludedPorts);
      failures = 0;
      if (active === 0) {
        ctx.log.info('no active connections: done draining');
        return;
      }
      ctx.log.info(`${active} active connections, waiting`);
    } catch (err) {
      if (until.aborted) return;
      failures++;
      ctx.log.warn(`failed to read active connections (${failures}/${MAX_FAILED_POLLS}): ${(err as Error).message}`);
      if (failures >= MAX_FAILED_POLLS) return;
    }
    if (!(await sleepOn(ctx.clock, d.pollIntervalMs ?? 1000, until))) return;
  }
}

/**
 * PURE: sum of downstream_cx_active over listeners (SPEC §5.2): names starting `listener.`,
 * not per-worker, not internal, not admin, not the readiness/prometheus listeners. Lines
 * without exactly one `:` are skipped.
 */
export function activeConnections(body: string, excludedPorts: number[]): number {
  let sum = 0;
  for (const line of body.split('\n')) {
    const parts = line.split(':');
    if (parts.length !== 2) continue;
    const name = (parts[0] as string).trim();
    if (!name.startsWith('listener.') || name.includes('worker_') || name.startsWith('listener.envoy_internal_') || name.startsWith('listener.admin.')) {
      continue;
    }
    if (excludedPorts.some((p) => name.endsWith(`_${p}.downstream_cx_active`))) continue;
    const v = Number((parts[1] as string).trim());
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}
