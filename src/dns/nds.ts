/**
 * PURE: Istio's NDS name table (`istio.networking.nds.v1.NameTable`, the type istiod sends on
 * the xDS stream) decoded with protobufjs from the schema below. The field numbers are Istio's
 * `pkg/dns/proto/nds.proto`; the schema is parsed from text at load time (no file at runtime).
 * Malformed bytes throw `NdsDecodeError` naming what was wrong.
 */
import protobuf from 'protobufjs';

export const NAME_TABLE_TYPE = 'type.googleapis.com/istio.networking.nds.v1.NameTable';

/** The schema, written for protobufjs from Istio's field numbers. */
export const NDS_PROTO = `
syntax = "proto3";
package istio.networking.nds.v1;
message NameTable {
  message NameInfo {
    repeated string ips = 1;
    string registry = 2;
    string shortname = 3;
    string namespace = 4;
    repeated string alt_hosts = 5;
  }
  map<string, NameInfo> table = 1;
}
`;

export interface NameInfo {
  ips: string[];
  /** `Kubernetes` for services of the cluster registry; ServiceEntry hosts arrive as `External`. */
  registry: string;
  shortname: string;
  namespace: string;
  /** Deprecated in Istio; still honoured for Kubernetes entries under the proxy's domain. */
  altHosts: string[];
}

/** hostname → resolution attributes. */
export type NameTable = Record<string, NameInfo>;

const NameTableType = protobuf.parse(NDS_PROTO, { keepCase: false }).root.lookupType('istio.networking.nds.v1.NameTable');

export class NdsDecodeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NdsDecodeError';
  }
}

interface RawInfo {
  ips?: string[];
  registry?: string;
  shortname?: string;
  namespace?: string;
  altHosts?: string[];
}

export function decodeNameTable(bytes: Uint8Array): NameTable {
  let msg: protobuf.Message;
  try {
    msg = NameTableType.decode(bytes);
  } catch (err) {
    throw new NdsDecodeError(`NameTable: not a valid protobuf message: ${(err as Error).message}`, { cause: err });
  }
  const raw = (msg as unknown as { table?: Record<string, RawInfo> }).table ?? {};
  const out: NameTable = {};
  for (const [host, info] of Object.entries(raw)) {
    out[host] = {
      ips: info.ips ?? [],
      registry: info.registry ?? '',
      shortname: info.shortname ?? '',
      namespace: info.namespace ?? '',
      altHosts: info.altHosts ?? [],
    };
  }
  return out;
}

/** Encodes a table (for the test control plane and benchmarks). */
export function encodeNameTable(table: Readonly<Record<string, Partial<NameInfo>>>): Uint8Array {
  return NameTableType.encode(NameTableType.fromObject({ table })).finish();
}
