/**
 * PURE: a minimal DER encoder (ITU-T X.690), just what the workload CSR (`./csr.ts`) needs:
 * definite lengths (short and long form), SEQUENCE, SET OF, non-negative INTEGER, OBJECT
 * IDENTIFIER from a dotted string, NULL, BOOLEAN, OCTET STRING, BIT STRING (whole bytes),
 * IA5String content (for an IMPLICIT tag), context-specific tags [0]..[30], and PEM framing.
 *
 * Every function returns a fresh Buffer holding one complete TLV (or, for `pem`, text).
 * Inputs that cannot be encoded (a negative length, a malformed OID, a non-ASCII IA5String)
 * throw a RangeError naming the value; nothing is silently truncated or escaped.
 */

/** The length octets: short form below 128, else 0x80|n followed by n big-endian bytes. */
export function encodeLength(length: number): Buffer {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`DER: invalid length ${length}`);
  if (length < 0x80) return Buffer.from([length]);
  return Buffer.from([0x80 | unsignedBytes(length).length, ...unsignedBytes(length)]);
}

/** One TLV with a single-octet identifier (`tag` is the whole identifier octet). */
export function tlv(tag: number, ...content: Uint8Array[]): Buffer {
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xff || (tag & 0x1f) === 0x1f) throw new RangeError(`DER: tag 0x${tag.toString(16)} needs more than one identifier octet`);
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), encodeLength(body.length), body]);
}

export function sequence(...items: Uint8Array[]): Buffer {
  return tlv(0x30, ...items);
}

/** SET OF: DER orders the elements by their encodings (X.690 §11.6). */
export function setOf(...items: Uint8Array[]): Buffer {
  return tlv(0x31, ...[...items].sort(Buffer.compare));
}

/** A non-negative INTEGER in the fewest octets (a leading 0x00 when the top bit is set). */
export function integer(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`DER: only non-negative safe integers are supported, got ${value}`);
  const bytes = value === 0 ? [0] : unsignedBytes(value);
  if ((bytes[0] ?? 0) & 0x80) bytes.unshift(0);
  return tlv(0x02, Buffer.from(bytes));
}

/**
 * OBJECT IDENTIFIER from dotted decimal (`1.2.840.113549.1.9.14`): the first two arcs combine
 * as 40*a+b, each sub-identifier in base 128, high bit set on all but its last octet.
 */
export function objectIdentifier(dotted: string): Buffer {
  const bad = (why: string) => new RangeError(`DER: invalid OBJECT IDENTIFIER "${dotted}": ${why}`);
  if (!/^\d+(\.\d+)+$/.test(dotted)) throw bad('expected at least two dot-separated decimal arcs');
  const arcs = dotted.split('.').map(Number);
  const [first = 0, second = 0, ...rest] = arcs;
  if (!arcs.every(Number.isSafeInteger)) throw bad('an arc is too large');
  if (first > 2) throw bad('the first arc must be 0, 1 or 2');
  if (first < 2 && second > 39) throw bad('the second arc must be below 40 when the first is 0 or 1');
  const subIdentifiers = [first * 40 + second, ...rest];
  if (!Number.isSafeInteger(subIdentifiers[0])) throw bad('an arc is too large');
  const out: number[] = [];
  for (const id of subIdentifiers) {
    const septets = [id % 128];
    for (let v = Math.floor(id / 128); v > 0; v = Math.floor(v / 128)) septets.unshift((v % 128) | 0x80);
    out.push(...septets);
  }
  return tlv(0x06, Buffer.from(out));
}

/** NULL (05 00), e.g. the parameters of an RSA AlgorithmIdentifier. */
export function nullValue(): Buffer {
  return Buffer.from([0x05, 0x00]);
}

/** BOOLEAN: DER writes TRUE as 0xFF. */
export function boolean(value: boolean): Buffer {
  return tlv(0x01, Buffer.from([value ? 0xff : 0x00]));
}

export function octetString(content: Uint8Array): Buffer {
  return tlv(0x04, content);
}

/** BIT STRING of whole bytes (0 unused bits): signatures and public keys. */
export function bitString(content: Uint8Array): Buffer {
  return tlv(0x03, Buffer.from([0]), content);
}

/** The content octets of an IA5String (ASCII); throws naming the string and the first non-ASCII character. */
export function ia5Bytes(text: string): Buffer {
  for (let i = 0; i < text.length; i++) {
    const cp = text.codePointAt(i) ?? 0;
    if (cp > 0x7f) {
      const hex = cp.toString(16).toUpperCase().padStart(4, '0');
      throw new RangeError(`cannot encode ${JSON.stringify(text)} as an IA5String (ASCII only): character "${String.fromCodePoint(cp)}" (U+${hex}) at index ${i}`);
    }
  }
  return Buffer.from(text, 'latin1');
}

/**
 * A context-specific tag [n] (n ≤ 30). IMPLICIT tagging: `content` is the content octets of
 * the underlying type; `constructed` when that type is (SEQUENCE/SET), e.g. the CSR's
 * `[0] IMPLICIT SET OF Attribute` (0xA0) or a GeneralName's `[6] IMPLICIT IA5String` (0x86).
 */
export function contextSpecific(tagNumber: number, content: Uint8Array, constructed: boolean): Buffer {
  if (!Number.isInteger(tagNumber) || tagNumber < 0 || tagNumber > 30) throw new RangeError(`DER: context-specific tag [${tagNumber}] is not supported (0..30)`);
  return tlv(0x80 | (constructed ? 0x20 : 0) | tagNumber, content);
}

/** PEM (RFC 7468): `-----BEGIN <label>-----`, base64 in 64-character lines, `-----END <label>-----`, a final newline. */
export function pem(label: string, der: Uint8Array): string {
  const lines = Buffer.from(der).toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.map((l) => `${l}\n`).join('')}-----END ${label}-----\n`;
}

/** Big-endian bytes of a positive safe integer, no leading zeros. */
function unsignedBytes(value: number): number[] {
  const bytes: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return bytes;
}
