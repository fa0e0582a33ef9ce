/**
 * What Envoy told the control plane, for the status page: per resource type, the last
 * acknowledged push (an ACK: a request carrying the response's nonce, no error) and the recent
 * NACKs with their error detail (google.rpc.Status code and message). Fed with every request
 * the proxy forwards (`observe`); reads only top-level fields and the small error_detail
 * message, never the resources. Also counts upstream (re)connections.
 */
import { Ring, isoTime } from '../status/registry.js';
import { WIRE_VARINT, messageField, readVarint, scanFields, stringField } from './wire.js';
import type { XdsStreamKind } from './messages.js';

/** error_detail's field number in DiscoveryRequest (sotw) and DeltaDiscoveryRequest (delta). */
const ERROR_DETAIL_FIELD: Record<XdsStreamKind, number> = { sotw: 6, delta: 7 };
const NONCE_FIELD: Record<XdsStreamKind, number> = { sotw: 5, delta: 6 };
const TYPE_URL_FIELD: Record<XdsStreamKind, number> = { sotw: 4, delta: 2 };
const VERSION_FIELD = 1; // sotw only

export interface XdsActivitySnapshot {
  upstreamConnects: number;
  lastUpstreamConnectAt: string | null;
  types: { typeUrl: string; lastAckAt: string | null; version: string | null; acks: number; nacks: number }[];
  nacks: { at: string; typeUrl: string; nonce: string; code: number | null; message: string }[];
}

interface TypeRecord {
  lastAckAt?: number;
  version?: string;
  acks: number;
  nacks: number;
}

export class XdsActivity {
  private readonly types = new Map<string, TypeRecord>();
  private readonly nacks = new Ring<{ at: number; typeUrl: string; nonce: string; code: number | null; message: string }>(10);
  private connects = 0;
  private lastConnectAt: number | undefined;

  /** One request from Envoy (its raw message); malformed input is ignored (the proxy reports it). */
  observe(kind: XdsStreamKind, req: Uint8Array): void {
    let fields;
    try {
      fields = scanFields(req);
    } catch {
      return;
    }
    const nonce = stringField(req, fields, NONCE_FIELD[kind]);
    if (nonce === '') return; // a subscription, not an answer to a push
    const typeUrl = stringField(req, fields, TYPE_URL_FIELD[kind]);
    const rec = this.types.get(typeUrl) ?? { acks: 0, nacks: 0 };
    this.types.set(typeUrl, rec);
    const detail = messageField(req, fields, ERROR_DETAIL_FIELD[kind]);
    if (detail === undefined) {
      rec.acks++;
      rec.lastAckAt = Date.now();
      if (kind === 'sotw') rec.version = stringField(req, fields, VERSION_FIELD);
      return;
    }
    rec.nacks++;
    this.nacks.push({ at: Date.now(), typeUrl, nonce, ...decodeStatus(detail) });
  }

  upstreamConnected(): void {
    this.connects++;
    this.lastConnectAt = Date.now();
  }

  snapshot(): XdsActivitySnapshot {
    return {
      upstreamConnects: this.connects,
      lastUpstreamConnectAt: isoTime(this.lastConnectAt),
      types: [...this.types].map(([typeUrl, r]) => ({ typeUrl, lastAckAt: isoTime(r.lastAckAt), version: r.version ?? null, acks: r.acks, nacks: r.nacks })),
      nacks: this.nacks.toArray().map((n) => ({ ...n, at: isoTime(n.at) as string })),
    };
  }
}

/** google.rpc.Status: code (1, varint), message (2, string). */
function decodeStatus(buf: Buffer): { code: number | null; message: string } {
  try {
    const fields = scanFields(buf);
    const c = fields.find((f) => f.field === 1 && f.wireType === WIRE_VARINT);
    return { code: c ? readVarint(buf, c.valueStart).value : null, message: stringField(buf, fields, 2) };
  } catch {
    return { code: null, message: '(undecodable error_detail)' };
  }
}
