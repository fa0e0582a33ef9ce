/**
 * Test support: a STRICT validator of an Envoy v3 bootstrap (a parsed JSON value) against
 * Envoy's real protos, the ones shipped in `@grpc/grpc-js-xds/deps/` (envoy-api, xds,
 * googleapis, protoc-gen-validate), read with protobufjs (SPEC §4: "the generated bootstrap
 * must validate against Envoy's v3 Bootstrap proto (strictly: unknown fields are errors)").
 *
 * Rules are protobuf's proto3 JSON mapping, as Envoy's JSON loader applies it to a bootstrap:
 * - a field may be spelled with its proto name (`stat_prefix`) or its JSON name (`statPrefix`);
 *   an unknown key is an error, as are both spellings of one field and two members of a oneof;
 * - scalars: ints as JSON numbers or decimal strings within range, 64-bit ints likewise,
 *   floats as numbers or "NaN"/"Infinity", bools as true/false, bytes as base64, enums as a
 *   value name or an integer;
 * - well-known types use their special JSON forms: Duration `"1.5s"`, Timestamp RFC 3339,
 *   FieldMask `"a.b,c"`, wrappers as the bare scalar (`UInt32Value` is `64`, not `{"value":64}`),
 *   Struct an object, Value anything, ListValue an array;
 * - `google.protobuf.Any` resolves its `@type` (`type.googleapis.com/<full name>`) among all
 *   loaded protos (an unknown type is an error) and validates its other keys as that message
 *   (a well-known type inside an Any is `{"@type": ..., "value": <its JSON>}`);
 * - `udpa.type.v1.TypedStruct` / `xds.type.v3.TypedStruct`: `value` is a Struct; when its
 *   `type_url` names a message in the loaded protos, `value` is also validated as that message
 *   (Envoy converts it the same strict way); an unknown `type_url` is accepted, since Envoy
 *   builds (Istio's) carry extensions the snapshot does not have.
 * - `null` for a field means "not set" (protobuf's JSON parser accepts it), except inside a
 *   list or as a map value, where only `google.protobuf.Value` may be null.
 *
 * Loading: every `.proto` under deps whose imports are all present is loaded once into one
 * protobufjs Root and cached in this module (a few hundred ms). The snapshot also carries some
 * v2 / alpha files whose imports are absent (e.g. envoy/api/v2); those are skipped, see
 * `protoLoadReport()`.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';

export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';

export interface BootstrapValidationError {
  /** JSON path of the offending value, e.g. `static_resources.clusters[2].foo`. */
  path: string;
  message: string;
}

export interface ProtoLoadReport {
  depsDir: string;
  loaded: number;
  /** Relative paths of .proto files skipped because an import is missing from the snapshot. */
  skipped: string[];
  millis: number;
}

let cache: { root: protobuf.Root; report: ProtoLoadReport } | undefined;

/** The directory holding grpc-js-xds's copies of the Envoy / xDS / Google protos. */
function depsDir(): string {
  const require = createRequire(import.meta.url);
  let dir = path.dirname(require.resolve('@grpc/grpc-js-xds'));
  while (!fs.existsSync(path.join(dir, 'deps', 'envoy-api'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find @grpc/grpc-js-xds/deps/envoy-api');
    dir = up;
  }
  return path.join(dir, 'deps');
}

function walkProtos(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walkProtos(p, out);
    else if (e.name.endsWith('.proto')) out.push(p);
  }
  return out;
}

/** The google/protobuf/*.proto files protobufjs bundles (its `common` set). */
const BUNDLED_WKT = new Set(['any', 'duration', 'empty', 'field_mask', 'struct', 'timestamp', 'wrappers'].map((n) => `google/protobuf/${n}.proto`));

/** Loads (once) every resolvable proto under deps into one Root. */
export function loadEnvoyProtos(): protobuf.Root {
  return loaded().root;
}

export function protoLoadReport(): ProtoLoadReport {
  return loaded().report;
}

function loaded(): { root: protobuf.Root; report: ProtoLoadReport } {
  if (cache) return cache;
  const started = performance.now();
  const deps = depsDir();
  const require = createRequire(import.meta.url);
  const protobufDir = path.dirname(require.resolve('protobufjs/package.json'));
  // Import roots; protobufjs's own dir provides google/protobuf/descriptor.proto.
  const roots = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((r) => path.join(deps, r));
  const find = (rel: string): string | undefined => {
    for (const r of [...roots, protobufDir]) {
      const p = path.join(r, rel);
      if (fs.existsSync(p)) return p;
    }
    return undefined;
  };
  const files = roots.flatMap((r) =>
    walkProtos(r)
      .map((f) => path.relative(r, f))
      // protoc-gen-validate's own test harness and Java bits are not API protos.
      .filter((rel) => !(r.endsWith('protoc-gen-validate') && !rel.startsWith('validate/'))),
  );
  const resolvable = new Map<string, boolean>();
  const canLoad = (rel: string, seen: Set<string>): boolean => {
    const known = resolvable.get(rel);
    if (known !== undefined) return known;
    if (seen.has(rel)) return true; // import cycle: decided by the other members
    const file = find(rel);
    if (!file) {
      const ok = BUNDLED_WKT.has(rel);
      resolvable.set(rel, ok);
      return ok;
    }
    seen.add(rel);
    const text = fs.readFileSync(file, 'utf8');
    const imports = [...text.matchAll(/^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;/gm)].map((m) => m[1] as string);
    const ok = imports.every((i) => canLoad(i, seen));
    resolvable.set(rel, ok);
    return ok;
  };
  const good = files.filter((f) => canLoad(f, new Set()));
  const skipped = files.filter((f) => !canLoad(f, new Set()));

  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => find(target) ?? target;
  root.loadSync(good, { keepCase: true });
  root.resolveAll();
  cache = { root, report: { depsDir: deps, loaded: good.length, skipped, millis: performance.now() - started } };
  return cache;
}

// ---------------------------------------------------------------------------------------------

/** Validates `value` as an Envoy v3 Bootstrap; returns every error found (empty = valid). */
export function validateBootstrap(value: unknown): BootstrapValidationError[] {
  return validateMessage(BOOTSTRAP_TYPE, value);
}

/** Validates `value` as the JSON form of the message `typeName` (a full name, no leading dot). */
export function validateMessage(typeName: string, value: unknown): BootstrapValidationError[] {
  const root = loadEnvoyProtos();
  const type = root.lookupType(typeName);
  const v = new Validator(root);
  v.message(type, value, '');
  return v.errors;
}

/** Throws an Error listing every error when `value` is not a valid Bootstrap. */
export function assertValidBootstrap(value: unknown): void {
  const errors = validateBootstrap(value);
  if (errors.length === 0) return;
  const lines = errors.map((e) => `  ${e.path || '<root>'}: ${e.message}`);
  throw new Error(`not a valid ${BOOTSTRAP_TYPE} (${errors.length} error${errors.length === 1 ? '' : 's'}):\n${lines.join('\n')}`);
}

// ---------------------------------------------------------------------------------------------

const INT32: [bigint, bigint] = [-(2n ** 31n), 2n ** 31n - 1n];
const UINT32: [bigint, bigint] = [0n, 2n ** 32n - 1n];
const INT64: [bigint, bigint] = [-(2n ** 63n), 2n ** 63n - 1n];
const UINT64: [bigint, bigint] = [0n, 2n ** 64n - 1n];
const INT_RANGES: Record<string, [bigint, bigint]> = {
  int32: INT32,
  sint32: INT32,
  sfixed32: INT32,
  uint32: UINT32,
  fixed32: UINT32,
  int64: INT64,
  sint64: INT64,
  sfixed64: INT64,
  uint64: UINT64,
  fixed64: UINT64,
};

const WRAPPERS: Record<string, string> = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
};

/** WKTs whose JSON form is not an object of their fields (inside an Any: `{"@type", "value"}`). */
const SPECIAL_JSON = new Set([
  ...Object.keys(WRAPPERS),
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.FieldMask',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  'google.protobuf.Any',
]);

const TYPED_STRUCTS = new Set(['udpa.type.v1.TypedStruct', 'xds.type.v3.TypedStruct']);

const MAX_DURATION_SECONDS = 315576000000n;
const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const BASE64 = /^(?:[A-Za-z0-9+/\-_]{4})*(?:[A-Za-z0-9+/\-_]{2}(?:==)?|[A-Za-z0-9+/\-_]{3}=?)?$/;

function fullName(t: protobuf.ReflectionObject): string {
  return t.fullName.replace(/^\./, '');
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${JSON.stringify(v)}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function keyPath(base: string, key: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return base ? `${base}.${key}` : key;
  return `${base}[${JSON.stringify(key)}]`;
}

/** protoc's default JSON name: drop underscores, capitalise the letter after each. */
function jsonName(field: protobuf.Field): string {
  const explicit = (field.options as Record<string, unknown> | undefined)?.json_name;
  if (typeof explicit === 'string') return explicit;
  return field.name.replace(/_+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''));
}

interface FieldIndex {
  byKey: Map<string, protobuf.Field>;
}

class Validator {
  readonly errors: BootstrapValidationError[] = [];
  private readonly indexes = new Map<protobuf.Type, FieldIndex>();

  constructor(private readonly root: protobuf.Root) {}

  private error(path: string, message: string): void {
    this.errors.push({ path, message });
  }

  private index(type: protobuf.Type): FieldIndex {
    let idx = this.indexes.get(type);
    if (!idx) {
      const byKey = new Map<string, protobuf.Field>();
      for (const f of type.fieldsArray) {
        byKey.set(f.name, f);
        byKey.set(jsonName(f), f);
      }
      idx = { byKey };
      this.indexes.set(type, idx);
    }
    return idx;
  }

  /** Resolves `type.googleapis.com/<name>` (any prefix up to the last '/') to a message type. */
  private resolveTypeUrl(url: string): protobuf.Type | undefined {
    const slash = url.lastIndexOf('/');
    const name = url.slice(slash + 1);
    if (slash < 0 || name === '') return undefined;
    try {
      const t = this.root.lookup(name);
      return t instanceof protobuf.Type ? t : undefined;
    } catch {
      return undefined;
    }
  }

  message(type: protobuf.Type, value: unknown, path: string): void {
    const name = fullName(type);
    if (SPECIAL_JSON.has(name)) {
      this.special(name, type, value, path);
      return;
    }
    if (!isObject(value)) {
      this.error(path, `expected an object (${name}), got ${describeValue(value)}`);
      return;
    }
    this.fields(type, value, path, new Set());
  }

  /** The keys of a message object (minus `skip`), checked against the type's fields. */
  private fields(type: protobuf.Type, obj: Record<string, unknown>, path: string, skip: Set<string>): void {
    const name = fullName(type);
    const { byKey } = this.index(type);
    const seen = new Map<protobuf.Field, string>();
    const oneofs = new Map<protobuf.OneOf, string>();
    for (const [key, v] of Object.entries(obj)) {
      if (skip.has(key)) continue;
      const p = keyPath(path, key);
      const field = byKey.get(key);
      if (!field) {
        this.error(p, `unknown field "${key}" in ${name}`);
        continue;
      }
      const prior = seen.get(field);
      if (prior !== undefined) {
        this.error(p, `field ${field.name} of ${name} is given twice ("${prior}" and "${key}")`);
        continue;
      }
      seen.set(field, key);
      if (v === null) continue; // "not set"
      const oneof = field.partOf;
      if (oneof && !(field.options as Record<string, unknown> | undefined)?.proto3_optional) {
        const other = oneofs.get(oneof);
        if (other !== undefined) {
          this.error(p, `"${key}" and "${other}" are both set, but only one member of oneof ${oneof.name} of ${name} may be`);
        } else {
          oneofs.set(oneof, key);
        }
      }
      this.field(field, v, p);
    }
  }

  private field(field: protobuf.FieldBase, v: unknown, path: string): void {
    if (field instanceof protobuf.MapField) {
      const keyType = field.keyType;
      if (!isObject(v)) {
        this.error(path, `expected an object (map<${keyType}, ${field.type}>), got ${describeValue(v)}`);
        return;
      }
      for (const [k, x] of Object.entries(v)) {
        const p = keyPath(path, k);
        if (keyType === 'bool' ? k !== 'true' && k !== 'false' : keyType in INT_RANGES && !this.intOk(k, keyType)) {
          this.error(p, `map key "${k}" is not a valid ${keyType}`);
        }
        this.single(field, x, p, true);
      }
      return;
    }
    if (field.repeated) {
      if (!Array.isArray(v)) {
        this.error(path, `expected an array (repeated ${field.type}), got ${describeValue(v)}`);
        return;
      }
      v.forEach((x, i) => this.single(field, x, `${path}[${i}]`, true));
      return;
    }
    this.single(field, v, path, false);
  }

  /** One value of a field's element type. `inContainer`: a list element or map value. */
  private single(field: protobuf.FieldBase, v: unknown, path: string, inContainer: boolean): void {
    const rt = field.resolvedType;
    if (v === null && inContainer && !(rt instanceof protobuf.Type && fullName(rt) === 'google.protobuf.Value')) {
      this.error(path, `null is not allowed here (element of ${field.name})`);
      return;
    }
    if (rt instanceof protobuf.Type) this.message(rt, v, path);
    else if (rt instanceof protobuf.Enum) this.enumValue(rt, v, path);
    else this.scalar(field.type, v, path);
  }

  private enumValue(e: protobuf.Enum, v: unknown, path: string): void {
    const name = fullName(e);
    if (name === 'google.protobuf.NullValue' && (v === null || v === 'NULL_VALUE')) return;
    if (typeof v === 'string') {
      if (!(v in e.values)) this.error(path, `"${v}" is not a value of enum ${name} (${Object.keys(e.values).join(', ')})`);
      return;
    }
    if (typeof v === 'number' && Number.isInteger(v) && this.intOk(String(v), 'int32')) return;
    this.error(path, `expected an enum ${name} value name, got ${describeValue(v)}`);
  }

  private intOk(v: unknown, type: string): boolean {
    let n: bigint;
    if (typeof v === 'number') {
      if (!Number.isInteger(v)) return false;
      n = BigInt(v);
    } else if (typeof v === 'string' && /^-?\d+$/.test(v)) {
      n = BigInt(v);
    } else {
      return false;
    }
    const [lo, hi] = INT_RANGES[type] as [bigint, bigint];
    return n >= lo && n <= hi;
  }

  private scalar(type: string, v: unknown, path: string): void {
    if (type in INT_RANGES) {
      if (!this.intOk(v, type)) this.error(path, `expected ${type} (an integer in range, as a number or a decimal string), got ${describeValue(v)}`);
      return;
    }
    switch (type) {
      case 'double':
      case 'float': {
        const ok =
          (typeof v === 'number' && (type === 'double' || Math.abs(v) <= 3.4028234663852886e38)) ||
          (typeof v === 'string' && (['NaN', 'Infinity', '-Infinity'].includes(v) || (v.trim() === v && v !== '' && Number.isFinite(Number(v)))));
        if (!ok) this.error(path, `expected ${type} (a number), got ${describeValue(v)}`);
        return;
      }
      case 'bool':
        if (typeof v !== 'boolean') this.error(path, `expected bool (true or false), got ${describeValue(v)}`);
        return;
      case 'string':
        if (typeof v !== 'string') this.error(path, `expected string, got ${describeValue(v)}`);
        return;
      case 'bytes':
        if (typeof v !== 'string' || !BASE64.test(v)) this.error(path, `expected bytes (a base64 string), got ${describeValue(v)}`);
        return;
    }
    this.error(path, `unsupported scalar type ${type}`);
  }

  /** Well-known types with a special JSON form. */
  private special(name: string, type: protobuf.Type, v: unknown, path: string): void {
    const wrapped = WRAPPERS[name];
    if (wrapped) {
      if (isObject(v)) this.error(path, `expected ${name} as a bare ${wrapped} (e.g. 5, not {"value": 5}), got ${describeValue(v)}`);
      else this.scalar(wrapped, v, path);
      return;
    }
    switch (name) {
      case 'google.protobuf.Duration': {
        const m = typeof v === 'string' ? DURATION.exec(v) : null;
        if (!m) this.error(path, `expected a Duration string like "1s" or "0.250s", got ${describeValue(v)}`);
        else if (BigInt(m[2] as string) > MAX_DURATION_SECONDS) this.error(path, `Duration ${v as string} is out of range`);
        return;
      }
      case 'google.protobuf.Timestamp':
        if (typeof v !== 'string' || !TIMESTAMP.test(v) || Number.isNaN(Date.parse(v))) {
          this.error(path, `expected an RFC 3339 Timestamp like "1972-01-01T10:00:20.021Z", got ${describeValue(v)}`);
        }
        return;
      case 'google.protobuf.FieldMask':
        if (typeof v !== 'string' || !/^([A-Za-z0-9_.]+(,[A-Za-z0-9_.]+)*)?$/.test(v)) this.error(path, `expected a FieldMask string, got ${describeValue(v)}`);
        return;
      case 'google.protobuf.Struct':
        if (!isObject(v)) this.error(path, `expected an object (google.protobuf.Struct), got ${describeValue(v)}`);
        return;
      case 'google.protobuf.Value':
        return; // any JSON value
      case 'google.protobuf.ListValue':
        if (!Array.isArray(v)) this.error(path, `expected an array (google.protobuf.ListValue), got ${describeValue(v)}`);
        return;
      case 'google.protobuf.Any':
        this.any(v, path);
        return;
    }
    this.fields(type, v as Record<string, unknown>, path, new Set());
  }

  private any(v: unknown, path: string): void {
    if (!isObject(v)) {
      this.error(path, `expected an object (google.protobuf.Any), got ${describeValue(v)}`);
      return;
    }
    const url = v['@type'];
    if (url === undefined) {
      if (Object.keys(v).length > 0) this.error(path, 'google.protobuf.Any without "@type"');
      return;
    }
    const typePath = keyPath(path, '@type');
    if (typeof url !== 'string') {
      this.error(typePath, `expected a type URL string, got ${describeValue(url)}`);
      return;
    }
    const type = this.resolveTypeUrl(url);
    if (!type) {
      this.error(typePath, `unknown type "${url}" (no such message in Envoy's protos)`);
      return;
    }
    const name = fullName(type);
    if (SPECIAL_JSON.has(name)) {
      for (const k of Object.keys(v)) if (k !== '@type' && k !== 'value') this.error(keyPath(path, k), `unknown field "${k}" in an Any holding ${name}`);
      if ('value' in v) this.special(name, type, v.value, keyPath(path, 'value'));
      return;
    }
    this.fields(type, v, path, new Set(['@type']));
    if (TYPED_STRUCTS.has(name)) this.typedStruct(v, path);
  }

  /** A TypedStruct's value, validated as its type_url when that type is known. */
  private typedStruct(v: Record<string, unknown>, path: string): void {
    const url = v.type_url ?? v.typeUrl;
    const value = v.value;
    if (typeof url !== 'string' || !isObject(value)) return;
    const type = this.resolveTypeUrl(url);
    if (type) this.message(type, value, keyPath(path, 'value'));
  }
}
