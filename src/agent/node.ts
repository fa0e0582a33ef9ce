/**
 * The node this agent presents (SPEC §3, §8): the identity computed at start, and the current
 * one after podinfo changes. A change replaces only LABELS/ANNOTATIONS; everything else stays
 * as computed at start. Read by every Envoy start (the bootstrap) and by the xDS proxy (the node).
 */
import type { AgentConfig } from '../config/load.js';
import { computeIdentity, withPodInfo, type Interfaces, type NodeIdentity } from '../bootstrap/node.js';

export class AgentNode {
  readonly startIdentity: NodeIdentity;
  private currentIdentity: NodeIdentity;
  private currentAnnotations: Record<string, string>;

  constructor(
    private readonly config: AgentConfig,
    private readonly interfaces: Interfaces,
    options: { fileCredential?: boolean } = {},
  ) {
    this.startIdentity = computeIdentity(config, { interfaces, ...(options.fileCredential ? { fileCredential: true } : {}) });
    this.currentIdentity = this.startIdentity;
    this.currentAnnotations = config.pod.annotations;
  }

  get identity(): NodeIdentity {
    return this.currentIdentity;
  }

  get annotations(): Record<string, string> {
    return this.currentAnnotations;
  }

  /** Applies new podinfo content; returns the new identity. */
  update(labels: Record<string, string>, annotations: Record<string, string>): NodeIdentity {
    this.currentIdentity = withPodInfo(this.startIdentity, this.config, this.interfaces, labels, annotations);
    this.currentAnnotations = annotations;
    return this.currentIdentity;
  }
}
