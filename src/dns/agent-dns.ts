/**
 * The agent's DNS proxy step (docs/DNS.md): whether it runs (a sidecar with
 * `ISTIO_META_DNS_CAPTURE=true`, or `ISTIO_META_ENABLE_DNS_SERVER=true`, from the environment
 * or proxyMetadata; never in standalone mode, which has no name table), the resolv.conf it
 * reads, and where it listens. Started before Envoy; a bad resolv.conf or address, or a port in
 * use, is a start-up error naming it.
 */
import fs from 'node:fs';
import type { Registry } from 'prom-client';
import type { AgentConfig } from '../config/load.js';
import { AgentError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { ROOT_RESOLV_CONF, planListeners } from './listen.js';
import { parseResolvConf } from './resolv.js';
import { DnsServer } from './server.js';
import { dnsEnabled } from './enabled.js';

export { DNS_NOT_READY_REASON, dnsEnabled } from './enabled.js';

export interface AgentDnsOptions {
  config: AgentConfig;
  log: Logger;
  registry?: Registry;
  uid?: number;
}

export async function startAgentDns(o: AgentDnsOptions): Promise<DnsServer | undefined> {
  const { config } = o;
  if (!dnsEnabled(config)) return undefined;
  const log = o.log.child({ scope: 'dns' });
  if (config.standalone) {
    log.warn('DNS proxy requested but the agent is standalone (no name table from a control plane); not starting it');
    return undefined;
  }
  const uid = o.uid ?? process.getuid?.() ?? -1;
  let plan: ReturnType<typeof planListeners>;
  let resolvPath = config.env.DNS_RESOLV_CONF;
  try {
    const first = planListeners(config.env.DNS_PROXY_ADDR, uid, []);
    if (first.preferRootResolvConf && resolvPath === '/etc/resolv.conf' && fs.existsSync(ROOT_RESOLV_CONF)) resolvPath = ROOT_RESOLV_CONF;
    const text = readResolvConf(resolvPath);
    const resolv = parseResolvConf(text);
    plan = planListeners(config.env.DNS_PROXY_ADDR, uid, resolv.addresses);
    for (const w of plan.warnings) log.error(w);
    if (resolv.servers.length === 0) log.warn(`${resolvPath}: no nameserver lines; names not in the table will get SERVFAIL`);
    const server = await DnsServer.start({
      addresses: plan.addresses,
      servers: resolv.servers,
      context: { namespace: config.pod.namespace, domain: config.domain, search: resolv.search },
      forwardTimeoutMs: config.env.DNS_FORWARD_TIMEOUT,
      forwardParallel: config.env.DNS_FORWARD_PARALLEL,
      cacheSize: config.env.DNS_CACHE_SIZE,
      respondBeforeSync: plan.respondBeforeSync,
      log,
      ...(o.registry ? { registry: o.registry } : {}),
    });
    log.info(`DNS proxy: resolv.conf ${resolvPath}, search ${resolv.search.join(' ') || '(none)'}, cache ${config.env.DNS_CACHE_SIZE > 0 ? `${config.env.DNS_CACHE_SIZE} entries` : 'off'}`);
    return server;
  } catch (err) {
    if (err instanceof AgentError) throw err;
    throw new AgentError('DNS_CONFIG_INVALID', `DNS proxy: ${describeError(err)}`, { cause: err });
  }
}

function readResolvConf(p: string): string {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch (err) {
    throw new AgentError('DNS_CONFIG_INVALID', `DNS proxy: cannot read resolv.conf ${p} (DNS_RESOLV_CONF): ${describeError(err)}`, { cause: err });
  }
}
