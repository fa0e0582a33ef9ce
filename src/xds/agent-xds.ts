/**
 * The agent's control-plane side in one call (SPEC §7.1, §7.2): upstream settings from the
 * config, the xDS proxy on `<configPath>/XDS`, its metrics, and the health prober when
 * ProxyConfig `readinessProbe` is set. Not used in standalone mode.
 *
 * Order: the probe config is validated first (a ConfigError before anything listens), then the
 * proxy binds (before Envoy starts, so Envoy's first dial finds it), then the prober starts.
 * `close()` / dispose stops the prober, then the proxy; idempotent.
 */
import path from 'node:path';
import type { Registry } from 'prom-client';
import type { AgentConfig } from '../config/load.js';
import type { NodeIdentity } from '../bootstrap/node.js';
import type { Logger } from '../log.js';
import { XdsProxy } from './proxy.js';
import type { AgentTypeHandler } from './agent-types.js';
import type { XdsNode } from './messages.js';
import { createXdsProxyMetrics } from './metrics.js';
import { xdsHeaderSource, xdsUpstreamSettings } from './upstream.js';
import { HealthProber, readinessProbeFromConfig, type EnvoyReadiness } from './health.js';

export interface AgentXdsOptions {
  config: AgentConfig;
  identity: NodeIdentity;
  /** The current node (after podinfo changes); defaults to `identity`'s. */
  node?: () => XdsNode;
  log: Logger;
  /** Envoy readiness (§6.1) for the health prober. */
  envoyReady: () => EnvoyReadiness;
  /** The agent's registry; the proxy's counters are registered on it. */
  registry?: Registry;
  /** A type the agent consumes from the stream (the NDS name table). */
  agentType?: AgentTypeHandler;
}

export interface AgentXds extends AsyncDisposable {
  proxy: XdsProxy;
  prober: HealthProber | undefined;
  close(): Promise<void>;
}

export function nodeFromIdentity(identity: NodeIdentity): XdsNode {
  return { id: identity.id, cluster: identity.cluster, locality: identity.locality, metadata: identity.metadata };
}

export function xdsSocketPath(config: AgentConfig): string {
  return path.resolve(config.cwd, config.proxy.configPath, 'XDS');
}

export async function startAgentXds(o: AgentXdsOptions): Promise<AgentXds> {
  const { config } = o;
  const log = o.log.child({ scope: 'xdsproxy' });
  const probe = readinessProbeFromConfig(config, o.identity.ips);
  const settings = xdsUpstreamSettings(config);
  for (const k of settings.invalidHeaders) log.warn(`env ${k}: not a valid gRPC metadata key; header not sent`);
  if (settings.token) log.info(`xDS token ${settings.token.path} (JWT_POLICY=${settings.token.jwtPolicy})`);
  else log.info(`xDS without a token (JWT_POLICY=${config.env.JWT_POLICY})`);
  const fixedNode = nodeFromIdentity(o.identity);
  const proxy = await XdsProxy.start({
    socketPath: xdsSocketPath(config),
    upstream: settings,
    headers: xdsHeaderSource(settings),
    node: o.node ?? (() => fixedNode),
    log,
    ...(o.registry ? { metrics: createXdsProxyMetrics(o.registry) } : {}),
    ...(o.agentType ? { agentType: o.agentType } : {}),
  });
  let prober: HealthProber | undefined;
  if (probe) {
    prober = new HealthProber({
      spec: probe,
      envoyReady: o.envoyReady,
      onReport: (r) => proxy.sendHealth(r),
      log: o.log.child({ scope: 'healthcheck' }),
      ipv6: o.identity.ipv6,
    });
    prober.start();
  }
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await prober?.close();
      await proxy.close();
    })());
  return { proxy, prober, close, [Symbol.asyncDispose]: close };
}
