/**
 * Envoy's real v3 protos for test code (the control plane, the Envoy double's ADS client, and
 * assertions): loaded once, lazily, with protobufjs from the copies shipped in
 * `@grpc/grpc-js-xds/deps` (field names kept in snake_case, as in Envoy's JSON). Never used by
 * `src/` (production code decodes only what it needs, with inline schemas).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('repository root not found');
    dir = up;
  }
  return dir;
}

const REPO = findRepoRoot();
const DEPS = path.join(REPO, 'node_modules', '@grpc', 'grpc-js-xds', 'deps');
const INCLUDES = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(DEPS, d));
const PROTOBUFJS = path.join(REPO, 'node_modules', 'protobufjs');

const FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
];

export const TYPES = {
  DiscoveryRequest: 'envoy.service.discovery.v3.DiscoveryRequest',
  DiscoveryResponse: 'envoy.service.discovery.v3.DiscoveryResponse',
  DeltaDiscoveryRequest: 'envoy.service.discovery.v3.DeltaDiscoveryRequest',
  DeltaDiscoveryResponse: 'envoy.service.discovery.v3.DeltaDiscoveryResponse',
  Resource: 'envoy.service.discovery.v3.Resource',
  Node: 'envoy.config.core.v3.Node',
  Cluster: 'envoy.config.cluster.v3.Cluster',
  Listener: 'envoy.config.listener.v3.Listener',
} as const;

export const TYPE_URL = {
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  health: 'type.googleapis.com/istio.v1.HealthInformation',
} as const;

let cached: protobuf.Root | undefined;

/** The loaded root (about 100 ms the first time). */
export function xdsRoot(): protobuf.Root {
  if (cached) return cached;
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    if (target.startsWith('google/protobuf/')) {
      const p = path.join(PROTOBUFJS, target);
      return fs.existsSync(p) ? p : target;
    }
    for (const dir of INCLUDES) {
      const p = path.join(dir, target);
      if (fs.existsSync(p)) return p;
    }
    return target;
  };
  root.loadSync(FILES, { keepCase: true });
  root.resolveAll();
  cached = root;
  return root;
}

export function xdsType(name: string): protobuf.Type {
  return xdsRoot().lookupType(name);
}

/** Type URL → message type, for resources inside `Any`. */
export function typeForUrl(typeUrl: string): protobuf.Type | undefined {
  const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
  try {
    return xdsRoot().lookupType(name);
  } catch {
    return undefined;
  }
}

export function encodeMessage(typeName: string, obj: Record<string, unknown>): Buffer {
  const t = xdsType(typeName);
  const err = t.verify(obj);
  if (err) throw new Error(`${typeName}: ${err}`);
  return Buffer.from(t.encode(t.fromObject(obj)).finish());
}

/** Decodes to a plain object: snake_case, enums as names, longs as numbers, bytes as Buffers. */
export function decodeMessage<T = Record<string, unknown>>(typeName: string, buf: Uint8Array): T {
  const t = xdsType(typeName);
  return t.toObject(t.decode(buf), { enums: String, longs: Number, defaults: false, arrays: true, objects: true }) as T;
}

/** `google.protobuf.Any` holding `obj` encoded as the type the URL names. */
export function packAny(typeUrl: string, obj: Record<string, unknown>): { type_url: string; value: Buffer } {
  const t = typeForUrl(typeUrl);
  if (!t) throw new Error(`unknown type ${typeUrl}`);
  return { type_url: typeUrl, value: Buffer.from(t.encode(t.fromObject(obj)).finish()) };
}

/** google.protobuf.Struct (as decoded by `decodeMessage`) → plain JSON. */
export function structToJson(s: unknown): Record<string, unknown> {
  const fields = (s as { fields?: Record<string, unknown> } | undefined)?.fields ?? {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = valueToJson(v);
  return out;
}

function valueToJson(v: unknown): unknown {
  // protobufjs' built-in google.protobuf types use camelCase field names whatever keepCase says.
  const o = (v ?? {}) as Record<string, unknown>;
  if ('stringValue' in o) return o.stringValue;
  if ('numberValue' in o) return o.numberValue;
  if ('boolValue' in o) return o.boolValue;
  if ('structValue' in o) return structToJson(o.structValue);
  if ('listValue' in o) return ((o.listValue as { values?: unknown[] }).values ?? []).map(valueToJson);
  return null;
}

/** Plain JSON → google.protobuf.Struct message object (for `encodeMessage`). */
export function jsonToStruct(o: Record<string, unknown>): { fields: Record<string, unknown> } {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) fields[k] = jsonToValue(v);
  return { fields };
}

function jsonToValue(v: unknown): Record<string, unknown> {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsonToValue) } };
  return { structValue: jsonToStruct(v as Record<string, unknown>) };
}

/** A decoded Node with its metadata as plain JSON. */
export interface DecodedNode {
  id?: string;
  cluster?: string;
  locality?: { region?: string; zone?: string; sub_zone?: string };
  metadata: Record<string, unknown>;
  user_agent_name?: string;
  user_agent_build_version?: Record<string, unknown>;
  client_features?: string[];
  [k: string]: unknown;
}

export function nodeFromDecoded(node: Record<string, unknown> | undefined): DecodedNode | undefined {
  if (!node) return undefined;
  return { ...node, metadata: structToJson(node.metadata) } as DecodedNode;
}
