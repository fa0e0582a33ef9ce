/**
 * Wire codec of the SDS protocol (SotW): `envoy.service.discovery.v3.DiscoveryRequest` /
 * `DiscoveryResponse` and the `envoy.extensions.transport_sockets.tls.v3.Secret` resources,
 * reduced to the fields the agent reads or writes, with Envoy's field numbers (protobuf ignores
 * the fields we leave out). Built with protobufjs from the definition below, so the agent does
 * not need Envoy's whole proto tree at run time; `test/sds/proto.test.ts` checks it against
 * Envoy's real protos.
 */
import protobuf from 'protobufjs';

export const SECRET_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
export const STREAM_SECRETS_PATH = '/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets';

const PROTO = `
syntax = "proto3";
package pilot_agent.sds;
message Any { string type_url = 1; bytes value = 2; }
message Status { int32 code = 1; string message = 2; }
message Node { string id = 1; string cluster = 2; }
message DiscoveryRequest {
  string version_info = 1;
  Node node = 2;
  repeated string resource_names = 3;
  string type_url = 4;
  string response_nonce = 5;
  Status error_detail = 6;
}
message DiscoveryResponse {
  string version_info = 1;
  repeated Any resources = 2;
  string type_url = 4;
  string nonce = 5;
}
message DataSource {
  oneof specifier {
    string filename = 1;
    bytes inline_bytes = 2;
    string inline_string = 3;
    string environment_variable = 4;
  }
}
message TlsCertificate { DataSource certificate_chain = 1; DataSource private_key = 2; }
message CertificateValidationContext { DataSource trusted_ca = 1; }
message Secret {
  string name = 1;
  oneof type {
    TlsCertificate tls_certificate = 2;
    CertificateValidationContext validation_context = 4;
  }
}
`;

const root = protobuf.parse(PROTO, { keepCase: true }).root;
const RequestType = root.lookupType('pilot_agent.sds.DiscoveryRequest');
const ResponseType = root.lookupType('pilot_agent.sds.DiscoveryResponse');
const SecretType = root.lookupType('pilot_agent.sds.Secret');

export interface DiscoveryRequest {
  version_info: string;
  node?: { id: string; cluster: string };
  resource_names: string[];
  type_url: string;
  response_nonce: string;
  error_detail?: { code: number; message: string };
}

export interface DiscoveryResponse {
  version_info: string;
  resources: Array<{ type_url: string; value: Uint8Array }>;
  type_url: string;
  nonce: string;
}

export type SecretResource =
  | { name: string; tls_certificate: { certificate_chain: { inline_bytes: Uint8Array }; private_key: { inline_bytes: Uint8Array } } }
  | { name: string; validation_context: { trusted_ca: { inline_bytes: Uint8Array } } };

export function decodeDiscoveryRequest(buf: Buffer): DiscoveryRequest {
  return RequestType.toObject(RequestType.decode(buf), { arrays: true, defaults: true }) as DiscoveryRequest;
}

export function encodeDiscoveryRequest(req: Partial<DiscoveryRequest>): Buffer {
  return Buffer.from(RequestType.encode(RequestType.fromObject(req)).finish());
}

export function encodeDiscoveryResponse(res: DiscoveryResponse): Buffer {
  return Buffer.from(ResponseType.encode(ResponseType.fromObject(res)).finish());
}

export function decodeDiscoveryResponse(buf: Buffer): DiscoveryResponse {
  return ResponseType.toObject(ResponseType.decode(buf), { arrays: true, defaults: true }) as DiscoveryResponse;
}

export function encodeSecret(secret: SecretResource): Uint8Array {
  return SecretType.encode(SecretType.fromObject(secret)).finish();
}
