/**
 * The agent's reaction to a podinfo change (SPEC §8), spanning components: the new labels and
 * annotations become the node's metadata; the bootstrap on disk is rewritten for a running Envoy;
 * the xDS proxy re-opens Envoy's stream (so the control plane sees the new node); the supervisor
 * hot-restarts Envoy when hot restart is on. Config-bearing annotations only warn: they apply at
 * the next container start. `startPodInfoReconfigure` owns the directory watcher (disposing the
 * result stops it; no reaction runs after).
 */
import type { Logger } from '../log.js';
import { CONFIG_BEARING_ANNOTATIONS } from '../bootstrap/node.js';
import { PodInfoWatcher, type PodInfo } from '../podinfo/watcher.js';
import type { AgentNode } from './node.js';

/** What a podinfo change reaches; each member is one component's verb. */
export interface PodInfoTargets {
  node: AgentNode;
  /** Rewrites the bootstrap from the node's current identity (throws on failure). */
  writeBootstrap: () => void;
  /** Whether an Envoy is running now (only then is its bootstrap on disk kept current). */
  envoyRunning: () => boolean;
  /** The xDS proxy's verb, absent in standalone mode. */
  resetEnvoyStream?: (reason: string) => void;
  /** The supervisor's verb: hot restart (or a note that the change applies at the next start). */
  restartForNewBootstrap: (reason: string) => void;
  /** Told of every applied change (the status page's pod panel). */
  onReload?: (info: PodInfo) => void;
  log: Logger;
}

/** Builds the `onChange` reaction for a PodInfoWatcher. */
export function podInfoReaction(t: PodInfoTargets): (info: PodInfo) => void {
  return (info) => {
    for (const a of CONFIG_BEARING_ANNOTATIONS) {
      if (info.annotations[a] !== t.node.annotations[a]) t.log.warn(`annotation ${a} changed: takes effect on the next container start`);
    }
    t.node.update(info.labels, info.annotations);
    t.onReload?.(info);
    // Keep the bootstrap on disk current for the running Envoy (it is rewritten before every start anyway).
    if (t.envoyRunning()) {
      try {
        t.writeBootstrap();
      } catch (err) {
        t.log.warn(`podinfo change: could not rewrite the bootstrap: ${(err as Error).message}`);
      }
    }
    t.resetEnvoyStream?.('podinfo changed');
    t.restartForNewBootstrap('podinfo changed');
  };
}

export interface PodInfoReconfigureOptions extends PodInfoTargets {
  dir: string;
  /** The podinfo content the config was built from. */
  initial: PodInfo;
  metrics?: { reload(): void; error(): void };
  debounceMs?: number;
}

/** Starts watching the podinfo directory; resolves once the watch is set up. */
export async function startPodInfoReconfigure(o: PodInfoReconfigureOptions): Promise<AsyncDisposable> {
  const watcher = await PodInfoWatcher.start({
    dir: o.dir,
    log: o.log,
    initial: o.initial,
    onChange: podInfoReaction(o),
    ...(o.metrics ? { metrics: o.metrics } : {}),
    ...(o.debounceMs !== undefined ? { debounceMs: o.debounceMs } : {}),
  });
  return { [Symbol.asyncDispose]: () => watcher.close() };
}
