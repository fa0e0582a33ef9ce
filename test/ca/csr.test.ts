/**
 * The workload CSR without an X.509 library: the DER encoder (`src/ca/der.ts`) byte for byte
 * against hand-computed encodings, and the request (`src/ca/csr.ts`) checked by two
 * independent implementations, the real `openssl req` and `@peculiar/x509` (test side only),
 * plus a byte-level layout of everything in it but the key and the signature. Also: a
 * non-ASCII identity is refused, and the compiled CA client never loads `@peculiar/x509`.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { execFile, execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, verify, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateCsr } from '../../src/ca/csr.js';
import {
  bitString,
  boolean,
  contextSpecific,
  encodeLength,
  ia5Bytes,
  integer,
  nullValue,
  objectIdentifier,
  octetString,
  pem,
  sequence,
  setOf,
  tlv,
} from '../../src/ca/der.js';
import type { KeySpec } from '../../src/ca/options.js';
import { uriSans, x509 } from '../support/x509.js';
import { ConfigError } from '../../src/errors.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const IDENTITY = 'spiffe://cluster.local/ns/jiuxi-ns/sa/default';
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});
function tmpFile(name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-test-'));
  tmpDirs.push(dir);
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** Runs the real openssl; resolves with its exit code and output (never rejects on a non-zero exit). */
function openssl(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('openssl', args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

/** Test-side DER reader (one TLV at `offset`), independent of the encoder under test. */
function readTlv(buf: Buffer, offset = 0): { tag: number; start: number; contentStart: number; end: number } {
  const tag = buf[offset] ?? -1;
  let len = buf[offset + 1] ?? 0;
  let contentStart = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[contentStart + i] ?? 0);
    contentStart += n;
  }
  return { tag, start: offset, contentStart, end: contentStart + len };
}
function children(buf: Buffer): Buffer[] {
  const outer = readTlv(buf);
  const out: Buffer[] = [];
  for (let at = outer.contentStart; at < outer.end; ) {
    const c = readTlv(buf, at);
    out.push(buf.subarray(c.start, c.end));
    at = c.end;
  }
  return out;
}
const derOf = (csrPem: string) => Buffer.from(csrPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');

describe('DER encoder (hand-computed bytes)', () => {
  test('lengths: short form up to 127, then 0x80|n and n big-endian bytes', () => {
    expect(hex(encodeLength(0))).toBe('00');
    expect(hex(encodeLength(127))).toBe('7f');
    expect(hex(encodeLength(128))).toBe('8180');
    expect(hex(encodeLength(255))).toBe('81ff');
    expect(hex(encodeLength(256))).toBe('820100');
    expect(hex(encodeLength(65535))).toBe('82ffff');
    expect(hex(encodeLength(65536))).toBe('83010000');
    expect(() => encodeLength(-1)).toThrow(RangeError);
    expect(() => encodeLength(1.5)).toThrow(RangeError);
  });

  test('a TLV carries its content after the length, whatever the length form', () => {
    expect(hex(octetString(Buffer.alloc(0)))).toBe('0400');
    for (const [n, header] of [[127, '047f'], [128, '048180'], [255, '0481ff'], [256, '04820100'], [65536, '0483010000']] as const) {
      const content = Buffer.alloc(n, 0xab);
      const der = octetString(content);
      expect(hex(der.subarray(0, header.length / 2))).toBe(header);
      expect(der.length).toBe(header.length / 2 + n);
      expect(der.subarray(header.length / 2).equals(content)).toBe(true);
    }
    expect(() => tlv(0x1f)).toThrow('needs more than one identifier octet');
  });

  test('INTEGER: 0 is 02 01 00; a set top bit gets a leading zero; negatives are refused', () => {
    expect(hex(integer(0))).toBe('020100');
    expect(hex(integer(127))).toBe('02017f');
    expect(hex(integer(128))).toBe('02020080');
    expect(hex(integer(256))).toBe('02020100');
    expect(hex(integer(65537))).toBe('0203010001');
    expect(() => integer(-1)).toThrow(RangeError);
  });

  test('OBJECT IDENTIFIER: 40*a+b, then base-128 sub-identifiers', () => {
    // 840 = 6*128+72; 113549 = 6*128^2+119*128+13; 10045 = 78*128+61.
    expect(hex(objectIdentifier('1.2.840.113549.1.9.14'))).toBe('06092a864886f70d01090e');
    expect(hex(objectIdentifier('2.5.29.17'))).toBe('0603551d11');
    expect(hex(objectIdentifier('1.2.840.113549.1.1.11'))).toBe('06092a864886f70d01010b');
    expect(hex(objectIdentifier('1.2.840.10045.4.3.2'))).toBe('06082a8648ce3d040302');
    expect(hex(objectIdentifier('1.2.840.10045.4.3.3'))).toBe('06082a8648ce3d040303');
    // The first sub-identifier may need several octets too: 2*40+999 = 1079 = 8*128+55.
    expect(hex(objectIdentifier('2.999.3'))).toBe('0603883703');
    expect(hex(objectIdentifier('0.0'))).toBe('060100');
    for (const bad of ['1', '3.1', '1.40', '1..2', 'a.b', '1.2.', '']) expect(() => objectIdentifier(bad)).toThrow(`invalid OBJECT IDENTIFIER "${bad}"`);
  });

  test('NULL, BOOLEAN, BIT STRING, SEQUENCE, SET OF (sorted), IA5String, context tags', () => {
    expect(hex(nullValue())).toBe('0500');
    expect(hex(boolean(true))).toBe('0101ff');
    expect(hex(boolean(false))).toBe('010100');
    expect(hex(bitString(bytes('0102')))).toBe('0303000102');
    expect(hex(sequence())).toBe('3000');
    expect(hex(sequence(integer(0), nullValue()))).toBe('30050201000500');
    expect(hex(setOf(integer(2), integer(1)))).toBe('3106020101020102');
    expect(hex(ia5Bytes('a:/b'))).toBe('613a2f62');
    expect(hex(contextSpecific(6, Buffer.from('ab'), false))).toBe('86026162');
    expect(hex(contextSpecific(0, sequence(), true))).toBe('a0023000');
    expect(() => contextSpecific(31, Buffer.alloc(0), false)).toThrow(RangeError);
  });

  test('IA5String refuses non-ASCII, naming the string and the character', () => {
    expect(() => ia5Bytes('spiffe://td/ns/café/sa/x')).toThrow('cannot encode "spiffe://td/ns/café/sa/x" as an IA5String (ASCII only): character "é" (U+00E9) at index 18');
    expect(() => ia5Bytes('a\u{1F600}')).toThrow('character "\u{1F600}" (U+1F600) at index 1');
    expect(hex(ia5Bytes('\x7f'))).toBe('7f');
  });

  test('PEM: BEGIN/END lines, base64 in 64-character lines, a final newline', () => {
    expect(pem('X', Buffer.alloc(48))).toBe(`-----BEGIN X-----\n${'A'.repeat(64)}\n-----END X-----\n`);
    expect(pem('X', Buffer.alloc(49))).toBe(`-----BEGIN X-----\n${'A'.repeat(64)}\nAA==\n-----END X-----\n`);
    expect(pem('X', Buffer.alloc(0))).toBe('-----BEGIN X-----\n-----END X-----\n');
  });
});

const cases: Array<{ name: string; key: KeySpec; hash: string; sigAlgHex: string; opensslAlg: string; infoHeader: string }> = [
  // certificationRequestInfo content = version (3) + subject (2) + SPKI + attributes (80 for IDENTITY).
  { name: 'RSA 2048', key: { type: 'rsa', bits: 2048 }, hash: 'sha256', sigAlgHex: '300d06092a864886f70d01010b0500', opensslAlg: 'sha256WithRSAEncryption', infoHeader: '3082017b' }, // 3+2+294+80 = 379
  { name: 'ECDSA P-256', key: { type: 'ecdsa', curve: 'P-256' }, hash: 'sha256', sigAlgHex: '300a06082a8648ce3d040302', opensslAlg: 'ecdsa-with-SHA256', infoHeader: '3081b0' }, // 3+2+91+80 = 176
  { name: 'ECDSA P-384', key: { type: 'ecdsa', curve: 'P-384' }, hash: 'sha384', sigAlgHex: '300a06082a8648ce3d040303', opensslAlg: 'ecdsa-with-SHA384', infoHeader: '3081cd' }, // 3+2+120+80 = 205
];

/** [0] { SEQUENCE { extensionRequest, SET { SEQUENCE { SEQUENCE { subjectAltName, TRUE, OCTET STRING { SEQUENCE { [6] IDENTITY } } } } } } } */
const ATTRIBUTES_HEX = `a04e 304c 06092a864886f70d01090e 313f 303d 303b 0603551d11 0101ff 0431 302f 862d ${Buffer.from(IDENTITY).toString('hex')}`;

describe.each(cases)('the CSR, $name', ({ key, hash, sigAlgHex, opensslAlg, infoHeader }) => {
  const generated = generateCsr({ identity: IDENTITY, key });
  // Jest reports a rejection in the test that awaits it; keep Node from calling it unhandled first.
  generated.catch(() => {});

  test('byte layout: version 0, empty subject, our SPKI, the SAN attribute, the algorithm, a signature over the info', async () => {
    const g = await generated;
    const der = derOf(g.csrPem);
    expect(readTlv(der).end).toBe(der.length);
    const [info, alg, sig, ...extra] = children(der);
    expect(extra).toEqual([]);
    const spki = g.publicKey.export({ type: 'spki', format: 'der' });
    expect(hex(info ?? Buffer.alloc(0))).toBe(`${infoHeader}020100 3000 ${hex(spki)} ${ATTRIBUTES_HEX}`.replace(/\s+/g, ''));
    expect(hex(alg ?? Buffer.alloc(0))).toBe(sigAlgHex);
    const sigTlv = readTlv(sig ?? Buffer.alloc(0));
    expect(sigTlv.tag).toBe(0x03);
    expect(sig?.[sigTlv.contentStart]).toBe(0); // no unused bits
    const signature = (sig ?? Buffer.alloc(0)).subarray(sigTlv.contentStart + 1, sigTlv.end);
    expect(verify(hash, info ?? Buffer.alloc(0), g.publicKey, signature)).toBe(true);
    if (key.type === 'ecdsa') {
      // X.509 wants the DER ECDSA-Sig-Value: SEQUENCE { INTEGER r, INTEGER s }.
      expect(readTlv(signature).end).toBe(signature.length);
      expect(children(signature).map((c) => c[0])).toEqual([0x02, 0x02]);
    }
  });

  test('openssl verifies the self-signature and shows the critical URI SAN', async () => {
    const g = await generated;
    const file = tmpFile('req.csr', g.csrPem);
    const verified = await openssl(['req', '-in', file, '-noout', '-verify']);
    expect(verified).toMatchObject({ code: 0, out: expect.stringContaining('self-signature verify OK') });
    const text = await openssl(['req', '-in', file, '-noout', '-text']);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/Version: 1 \(0x0\)\n\s+Subject: ?\n/);
    expect(text.out).toMatch(/X509v3 Subject Alternative Name: critical\n\s+URI:spiffe:\/\/cluster\.local\/ns\/jiuxi-ns\/sa\/default\n/);
    expect(text.out).toContain(`Signature Algorithm: ${opensslAlg}`);
  });

  test('@peculiar/x509 parses it: the URI SAN, critical, our public key, a valid signature', async () => {
    const g = await generated;
    const csr = new x509.Pkcs10CertificateRequest(g.csrPem);
    expect(await csr.verify()).toBe(true);
    expect(csr.subject).toBe('');
    expect(uriSans(csr)).toEqual([IDENTITY]);
    expect(csr.extensions.map((e) => [e.type, e.critical])).toEqual([['2.5.29.17', true]]);
    const csrKey = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
    expect(csrKey.equals(g.publicKey)).toBe(true);
  });

  test('PEM framing: the CERTIFICATE REQUEST label, 64-character lines, a final newline', async () => {
    const { csrPem } = await generated;
    const lines = csrPem.split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE REQUEST-----');
    expect(lines.at(-2)).toBe('-----END CERTIFICATE REQUEST-----');
    expect(lines.at(-1)).toBe('');
    const body = lines.slice(1, -2);
    expect(body.slice(0, -1).every((l) => l.length === 64)).toBe(true);
    expect(body.at(-1)?.length).toBeGreaterThan(0);
    expect(body.at(-1)?.length).toBeLessThanOrEqual(64);
  });
});

test('openssl refuses a tampered request (the verification above can fail)', async () => {
  const g = await generateCsr({ identity: IDENTITY, key: { type: 'ecdsa', curve: 'P-256' } });
  const der = derOf(g.csrPem);
  const at = der.indexOf(Buffer.from('sa/default'));
  expect(at).toBeGreaterThan(0);
  der[at + 'sa/default'.length - 1] = 'u'.charCodeAt(0); // ...sa/defaulu: same length, signature no longer matches
  const verified = await openssl(['req', '-in', tmpFile('tampered.csr', pem('CERTIFICATE REQUEST', der)), '-noout', '-verify']);
  // OpenSSL 3.0 exits 0 even then (later versions exit 1), so the verdict is read from the output.
  expect(verified.out).toContain('self-signature verify failure');
  expect(verified.out).not.toContain('verify OK');
});

describe('keys', () => {
  const details = (k: KeyObject) => k.asymmetricKeyDetails;

  test('RSA: the configured modulus, e = 65537, PKCS#1 PEM by default, PKCS#8 when asked', async () => {
    const g = await generateCsr({ identity: IDENTITY, key: { type: 'rsa', bits: 3072 } });
    expect(g.publicKey.asymmetricKeyType).toBe('rsa');
    expect(details(g.publicKey)).toMatchObject({ modulusLength: 3072, publicExponent: 65537n });
    expect(g.privateKeyPem).toMatch(/^-----BEGIN RSA PRIVATE KEY-----\n[\s\S]+\n-----END RSA PRIVATE KEY-----\n$/);
    expect(createPublicKey(g.privateKeyPem).equals(g.publicKey)).toBe(true);
    const p8 = await generateCsr({ identity: IDENTITY, key: { type: 'rsa', bits: 2048 }, pkcs8: true });
    expect(p8.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(createPublicKey(p8.privateKeyPem).equals(p8.publicKey)).toBe(true);
  });

  test('ECDSA: the named curve, SEC 1 PEM by default, PKCS#8 when asked', async () => {
    const p256 = await generateCsr({ identity: IDENTITY, key: { type: 'ecdsa', curve: 'P-256' } });
    expect(details(p256.publicKey)).toEqual({ namedCurve: 'prime256v1' });
    expect(p256.privateKeyPem).toMatch(/^-----BEGIN EC PRIVATE KEY-----\n/);
    expect(createPublicKey(p256.privateKeyPem).equals(p256.publicKey)).toBe(true);
    const p384 = await generateCsr({ identity: IDENTITY, key: { type: 'ecdsa', curve: 'P-384' }, pkcs8: true });
    expect(details(p384.publicKey)).toEqual({ namedCurve: 'secp384r1' });
    expect(p384.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(createPrivateKey(p384.privateKeyPem).asymmetricKeyType).toBe('ec');
    expect(createPublicKey(p384.privateKeyPem).equals(p384.publicKey)).toBe(true);
  });

  test('every request gets a fresh key', async () => {
    const key: KeySpec = { type: 'ecdsa', curve: 'P-256' };
    const [a, b] = await Promise.all([generateCsr({ identity: IDENTITY, key }), generateCsr({ identity: IDENTITY, key })]);
    expect(a.publicKey.equals(b.publicKey)).toBe(false);
  });
});

test('a non-ASCII identity is a configuration error naming it', async () => {
  const identity = 'spiffe://cluster.local/ns/café/sa/default';
  const err = await generateCsr({ identity, key: { type: 'ecdsa', curve: 'P-256' } }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as ConfigError).message).toBe(`workload identity "${identity}" cannot be put in a CSR: a URI SAN must be ASCII`);
  expect(((err as ConfigError).cause as Error).message).toContain('character "é" (U+00E9) at index 29');
});

describe('no X.509 library at run time', () => {
  test('csr.ts and der.ts load nothing dynamically, and nothing under src/ imports @peculiar/* or x509.js', () => {
    for (const f of ['src/ca/csr.ts', 'src/ca/der.ts']) {
      expect(fs.readFileSync(path.join(repo, f), 'utf8')).not.toMatch(/import\(|require\(/);
    }
    const files = (fs.readdirSync(path.join(repo, 'src'), { recursive: true }) as string[]).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(50);
    for (const f of files) {
      expect([f, fs.readFileSync(path.join(repo, 'src', f), 'utf8')]).not.toEqual([f, expect.stringMatching(/['"](@peculiar\/[^'"]*|[^'"]*\/x509\.js)['"]/)]);
    }
  });

  test('a real process importing the compiled CA client (and making a CSR) never loads @peculiar/x509; importing x509.js does', () => {
    const script = `
      import { createRequire } from 'node:module';
      const peculiar = () => Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('/node_modules/@peculiar/')).length > 0;
      const out = [];
      await import(${JSON.stringify(path.join(repo, 'dist/src/ca/client.js'))});
      const { generateCsr } = await import(${JSON.stringify(path.join(repo, 'dist/src/ca/csr.js'))});
      await generateCsr({ identity: 'spiffe://a/ns/b/sa/c', key: { type: 'ecdsa', curve: 'P-256' } });
      out.push(peculiar());
      await import(${JSON.stringify(path.join(repo, 'dist/test/support/x509.js'))});
      out.push(peculiar());
      console.log(JSON.stringify(out));`;
    const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repo, encoding: 'utf8' });
    expect(JSON.parse(stdout)).toEqual([false, true]);
  });
});
