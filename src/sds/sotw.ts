/**
 * PURE: the secrets served over SDS and the state-of-the-world bookkeeping of one SDS stream
 * (Istio's `xds.ShouldRespond` for the one type an SDS stream carries).
 *
 * `SotwWatch.onRequest` classifies each DiscoveryRequest:
 * - a request of another type → `wrong-type` (ignored, logged);
 * - `error_detail` set → `nack`: Envoy rejected our last response; nothing is re-sent (it keeps
 *   the previous secret; the next rotation sends a new one);
 * - no nonce, or no watch yet → `respond` with the requested names (first request, or Envoy
 *   reconnected);
 * - a nonce other than the last one sent → `stale` (an answer to an older response; ignored);
 * - the last nonce with the same names → `ack`; with other names → `respond` when names were
 *   added (the full set: SotW), `ack` when names were only removed; an empty name list
 *   unsubscribes (`unsubscribe`).
 * `sent(nonce)` records a response; `watches(name)` says whether a push concerns this stream.
 */
import type { IssuedCertificate } from '../ca/chain.js';
import { ROOT_SECRET } from './names.js';
import { SECRET_TYPE_URL, type DiscoveryRequest, type SecretResource } from './proto.js';

export function secretResource(name: string, cert: IssuedCertificate): SecretResource {
  if (name === ROOT_SECRET) return { name, validation_context: { trusted_ca: { inline_bytes: Buffer.from(cert.rootCertPem) } } };
  return {
    name,
    tls_certificate: {
      certificate_chain: { inline_bytes: Buffer.from(cert.certChainPem) },
      private_key: { inline_bytes: Buffer.from(cert.privateKeyPem) },
    },
  };
}

export type Verdict =
  | { kind: 'respond'; names: string[]; reason: 'initial' | 'reconnect' | 'names changed' }
  | { kind: 'ack' }
  | { kind: 'nack'; code: number; message: string }
  | { kind: 'stale'; nonce: string }
  | { kind: 'unsubscribe' }
  | { kind: 'wrong-type'; typeUrl: string };

export class SotwWatch {
  /** Requested names; undefined until the first request. */
  names: string[] | undefined;
  nonceSent: string | undefined;
  nonceAcked: string | undefined;
  /** Version of the last response Envoy accepted. */
  versionAcked = '';
  lastError: string | undefined;

  onRequest(req: DiscoveryRequest): Verdict {
    if (req.type_url !== '' && req.type_url !== SECRET_TYPE_URL) return { kind: 'wrong-type', typeUrl: req.type_url };
    if (req.error_detail && (req.error_detail.code !== 0 || req.error_detail.message !== '')) {
      this.lastError = req.error_detail.message;
      return { kind: 'nack', code: req.error_detail.code, message: req.error_detail.message };
    }
    const names = [...new Set(req.resource_names)];
    if (req.response_nonce === '' || this.names === undefined) {
      const reason = req.response_nonce === '' ? 'initial' : 'reconnect';
      this.names = names;
      if (names.length === 0) return { kind: 'unsubscribe' };
      return { kind: 'respond', names, reason };
    }
    if (req.response_nonce !== this.nonceSent) return { kind: 'stale', nonce: req.response_nonce };
    this.lastError = undefined;
    this.nonceAcked = req.response_nonce;
    this.versionAcked = req.version_info;
    const before = new Set(this.names);
    this.names = names;
    if (names.length === 0) return { kind: 'unsubscribe' };
    const added = names.filter((n) => !before.has(n));
    return added.length > 0 ? { kind: 'respond', names, reason: 'names changed' } : { kind: 'ack' };
  }

  sent(nonce: string): void {
    this.nonceSent = nonce;
  }

  watches(name: string): boolean {
    return this.names?.includes(name) ?? false;
  }
}
