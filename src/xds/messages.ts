/**
 * PURE: the few xDS message operations the proxy needs, done on raw bytes (SPEC §7.1: forward
 * without decoding what is not needed). Field numbers are Envoy's v3 API
 * (`envoy/service/discovery/v3/discovery.proto`, `envoy/config/core/v3/base.proto`); the tests
 * check every function against Envoy's own protos.
 *
 * - `summarizeRequest` / `summarizeResponse`: type URL, nonce, version, resource count, NACK.
 * - `replaceNode`: the request with its `node` swapped for the agent's current node (id, cluster,
 *   metadata, locality), keeping every other Node field Envoy sent (user agent, extensions,
 *   client features) byte for byte.
 * - `healthRequest`: an `istio.v1.HealthInformation` report as a SotW or Delta request.
 */
import protobuf from 'protobufjs';
import { WIRE_VARINT, encodeVarint, hasField, lenField, messageField, countField, rewriteFields, scanFields, stringField } from './wire.js';

export type XdsStreamKind = 'sotw' | 'delta';

export const TYPE_URL_PREFIX = 'type.googleapis.com/';
export const CLUSTER_TYPE = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
export const LISTENER_TYPE = 'type.googleapis.com/envoy.config.listener.v3.Listener';
export const HEALTH_INFO_TYPE = 'type.googleapis.com/istio.v1.HealthInformation';
/** gRPC status INTERNAL: the code of an unhealthy report's `error_detail` (Istio's). */
export const HEALTH_ERROR_CODE = 13;

export const ADS_SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';
export const ADS_METHOD: Record<XdsStreamKind, string> = {
  sotw: `/${ADS_SERVICE}/StreamAggregatedResources`,
  delta: `/${ADS_SERVICE}/DeltaAggregatedResources`,
};

/** Field numbers of DiscoveryRequest (sotw) and DeltaDiscoveryRequest (delta). */
const REQUEST_FIELDS = {
  sotw: { node: 2, typeUrl: 4, nonce: 5, version: 1, errorDetail: 6 },
  delta: { node: 1, typeUrl: 2, nonce: 6, version: 0, errorDetail: 7 },
} as const;
/** DiscoveryResponse and DeltaDiscoveryResponse share these numbers. */
const RESPONSE_FIELDS = { version: 1, resources: 2, typeUrl: 4, nonce: 5 } as const;
/** Node fields the agent owns; the others pass through. */
const NODE_OWNED_FIELDS = new Set([1, 2, 3, 4]);

export interface Locality {
  region?: string;
  zone?: string;
  sub_zone?: string;
}

/** The node the agent puts on the first request of every upstream stream (SPEC §3, §7.2). */
export interface XdsNode {
  id: string;
  cluster: string;
  locality?: Locality;
  /** JSON values; encoded as a google.protobuf.Struct. */
  metadata: Record<string, unknown>;
}

export interface RequestSummary {
  typeUrl: string;
  nonce: string;
  /** SotW `version_info` ('' for delta). */
  version: string;
  hasNode: boolean;
  /** Carries `error_detail`: a NACK (or an unhealthy report). */
  errorDetail: boolean;
}

export interface ResponseSummary {
  typeUrl: string;
  nonce: string;
  /** `version_info` (SotW) or `system_version_info` (delta). */
  version: string;
  resources: number;
}

export function summarizeRequest(kind: XdsStreamKind, buf: Uint8Array): RequestSummary {
  const f = REQUEST_FIELDS[kind];
  const fields = scanFields(buf);
  return {
    typeUrl: stringField(buf, fields, f.typeUrl),
    nonce: stringField(buf, fields, f.nonce),
    version: f.version === 0 ? '' : stringField(buf, fields, f.version),
    hasNode: hasField(fields, f.node),
    errorDetail: hasField(fields, f.errorDetail),
  };
}

/** Walks only the top-level field headers: resources are skipped, never decoded or copied. */
export function summarizeResponse(buf: Uint8Array): ResponseSummary {
  const fields = scanFields(buf);
  return {
    typeUrl: stringField(buf, fields, RESPONSE_FIELDS.typeUrl),
    nonce: stringField(buf, fields, RESPONSE_FIELDS.nonce),
    version: stringField(buf, fields, RESPONSE_FIELDS.version),
    resources: countField(fields, RESPONSE_FIELDS.resources),
  };
}

// Inline schema for the Node fields the agent writes (no .proto files at runtime).
const NODE_SCHEMA = {
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Struct: { fields: { fields: { keyType: 'string', type: 'Value', id: 1 } } },
            Value: {
              oneofs: { kind: { oneof: ['nullValue', 'numberValue', 'stringValue', 'boolValue', 'structValue', 'listValue'] } },
              fields: {
                nullValue: { type: 'NullValue', id: 1 },
                numberValue: { type: 'double', id: 2 },
                stringValue: { type: 'string', id: 3 },
                boolValue: { type: 'bool', id: 4 },
                structValue: { type: 'Struct', id: 5 },
                listValue: { type: 'ListValue', id: 6 },
              },
            },
            NullValue: { values: { NULL_VALUE: 0 } },
            ListValue: { fields: { values: { rule: 'repeated', type: 'Value', id: 1 } } },
          },
        },
      },
    },
    agent: {
      nested: {
        Locality: { fields: { region: { type: 'string', id: 1 }, zone: { type: 'string', id: 2 }, subZone: { type: 'string', id: 3 } } },
        NodeCore: {
          fields: {
            id: { type: 'string', id: 1 },
            cluster: { type: 'string', id: 2 },
            metadata: { type: 'google.protobuf.Struct', id: 3 },
            locality: { type: 'Locality', id: 4 },
          },
        },
      },
    },
  },
};
const NodeCore = protobuf.Root.fromJSON(NODE_SCHEMA as protobuf.INamespace).lookupType('agent.NodeCore');

type ValueMsg = Record<string, unknown>;

/** A JSON value as a google.protobuf.Value message object (undefined and functions become null). */
export function toValue(v: unknown): ValueMsg {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  if (typeof v === 'object') return { structValue: toStruct(v as Record<string, unknown>) };
  return { stringValue: String(v) };
}

export function toStruct(o: Record<string, unknown>): { fields: Record<string, ValueMsg> } {
  const fields: Record<string, ValueMsg> = {};
  for (const [k, v] of Object.entries(o)) fields[k] = toValue(v);
  return { fields };
}

/** The encoded Node fields the agent owns (id, cluster, metadata, locality). */
export function encodeNodeCore(node: XdsNode): Uint8Array {
  const loc = node.locality ?? {};
  const locality: Record<string, string> = {};
  if (loc.region) locality.region = loc.region;
  if (loc.zone) locality.zone = loc.zone;
  if (loc.sub_zone) locality.subZone = loc.sub_zone;
  const msg = NodeCore.create({
    id: node.id,
    cluster: node.cluster,
    metadata: toStruct(node.metadata),
    ...(Object.keys(locality).length > 0 ? { locality } : {}),
  });
  return NodeCore.encode(msg).finish();
}

/**
 * The request with its node replaced: Envoy's Node minus id/cluster/metadata/locality, plus the
 * agent's. A request without a node gets one. Other request fields are copied untouched.
 */
export function replaceNode(kind: XdsStreamKind, request: Uint8Array, node: XdsNode): Buffer {
  const nodeField = REQUEST_FIELDS[kind].node;
  const fields = scanFields(request);
  const old = messageField(request, fields, nodeField) ?? Buffer.alloc(0);
  const kept = rewriteFields(old, scanFields(old), NODE_OWNED_FIELDS);
  const merged = Buffer.concat([encodeNodeCore(node), kept]);
  return rewriteFields(request, fields, new Set([nodeField]), [lenField(nodeField, merged)]);
}

export type HealthReport = { healthy: true } | { healthy: false; message: string };

/** `google.rpc.Status{code, message}`. */
function encodeStatus(code: number, message: string): Buffer {
  return Buffer.concat([encodeVarint(1 * 8 + WIRE_VARINT), encodeVarint(code), lenField(2, Buffer.from(message, 'utf8'))]);
}

/**
 * A health report (SPEC §7.2): `type_url` HealthInformation, no error_detail when healthy,
 * `error_detail {code: 13, message}` when not. DiscoveryRequest (sotw) or DeltaDiscoveryRequest (delta).
 */
export function healthRequest(kind: XdsStreamKind, report: HealthReport): Buffer {
  const f = REQUEST_FIELDS[kind];
  const parts = [lenField(f.typeUrl, Buffer.from(HEALTH_INFO_TYPE, 'utf8'))];
  if (!report.healthy) parts.push(lenField(f.errorDetail, encodeStatus(HEALTH_ERROR_CODE, report.message)));
  return Buffer.concat(parts);
}

/** `Cluster` → `cds`, `Listener` → `lds`, …: the short name used in logs. */
export function shortType(typeUrl: string): string {
  const name = typeUrl.startsWith(TYPE_URL_PREFIX) ? typeUrl.slice(TYPE_URL_PREFIX.length) : typeUrl;
  switch (name) {
    case 'envoy.config.cluster.v3.Cluster':
      return 'cds';
    case 'envoy.config.listener.v3.Listener':
      return 'lds';
    case 'envoy.config.route.v3.RouteConfiguration':
      return 'rds';
    case 'envoy.config.endpoint.v3.ClusterLoadAssignment':
      return 'eds';
    case 'envoy.extensions.transport_sockets.tls.v3.Secret':
      return 'sds';
    case 'istio.v1.HealthInformation':
      return 'health';
    default:
      return name;
  }
}
