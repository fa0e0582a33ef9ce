/**
 * An NDS `NameTable` encoder written directly against the protobuf wire format (varints and
 * length-delimited fields, field numbers from Istio's `pkg/dns/proto/nds.proto`), independent of
 * protobufjs and of src/dns/nds.ts, so decoding is tested against bytes the agent did not make.
 * Map entries are `{1: key, 2: value}` messages, as every protobuf encoder writes them.
 */
export interface NameInfoInput {
  ips?: string[];
  registry?: string;
  shortname?: string;
  namespace?: string;
  altHosts?: string[];
}

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

function len(field: number, payload: Buffer): Buffer {
  return Buffer.concat([varint((field << 3) | 2), varint(payload.length), payload]);
}

function str(field: number, s: string): Buffer {
  return len(field, Buffer.from(s, 'utf8'));
}

export function encodeNameInfo(i: NameInfoInput): Buffer {
  const parts: Buffer[] = [];
  for (const ip of i.ips ?? []) parts.push(str(1, ip));
  if (i.registry) parts.push(str(2, i.registry));
  if (i.shortname) parts.push(str(3, i.shortname));
  if (i.namespace) parts.push(str(4, i.namespace));
  for (const a of i.altHosts ?? []) parts.push(str(5, a));
  return Buffer.concat(parts);
}

export function encodeNameTableBytes(table: Record<string, NameInfoInput>): Buffer {
  return Buffer.concat(Object.entries(table).map(([host, info]) => len(1, Buffer.concat([str(1, host), len(2, encodeNameInfo(info))]))));
}
