/**
 * Wire codec of `istio.v1.auth.IstioCertificateService` (istio.io/api `security/v1alpha1/ca.proto`,
 * 1.6's `security/proto/istioca.proto`): the request and response messages, with Istio's field
 * numbers, built with protobufjs from the definition below. Field 4 (`metadata`, a Struct that
 * current Istio fills only with a CertSigner name) is never sent, so 1.6 and current istiod
 * both read the request the same way.
 */
import protobuf from 'protobufjs';

export const CREATE_CERTIFICATE_PATH = '/istio.v1.auth.IstioCertificateService/CreateCertificate';

const PROTO = `
syntax = "proto3";
package istio.v1.auth;
message IstioCertificateRequest {
  string csr = 1;
  string subject_id = 2;
  int64 validity_duration = 3;
}
message IstioCertificateResponse {
  repeated string cert_chain = 1;
}
`;

const root = protobuf.parse(PROTO, { keepCase: true }).root;
const RequestType = root.lookupType('istio.v1.auth.IstioCertificateRequest');
const ResponseType = root.lookupType('istio.v1.auth.IstioCertificateResponse');

export interface IstioCertificateRequest {
  csr: string;
  subject_id?: string;
  /** Seconds. */
  validity_duration: number;
}

export interface IstioCertificateResponse {
  cert_chain: string[];
}

export function encodeCertificateRequest(req: IstioCertificateRequest): Buffer {
  return Buffer.from(RequestType.encode(RequestType.fromObject(req)).finish());
}

export function decodeCertificateRequest(buf: Buffer): IstioCertificateRequest {
  const o = RequestType.toObject(RequestType.decode(buf), { longs: Number, defaults: true }) as IstioCertificateRequest;
  return o;
}

export function encodeCertificateResponse(res: IstioCertificateResponse): Buffer {
  return Buffer.from(ResponseType.encode(ResponseType.fromObject(res)).finish());
}

export function decodeCertificateResponse(buf: Buffer): IstioCertificateResponse {
  return ResponseType.toObject(ResponseType.decode(buf), { arrays: true, defaults: true }) as IstioCertificateResponse;
}
