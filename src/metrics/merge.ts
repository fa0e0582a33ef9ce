/**
 * PURE streaming merger of Prometheus expositions (SPEC §6.2; rules in ./README.md).
 *
 * Sources are fed one after another (`begin` → `write`* → `end` | `abort`), as raw byte
 * chunks split anywhere; the merger works line by line and returns the bytes to emit,
 * mostly as zero-copy slices of the input. It holds at most one partial line plus the set
 * of metric names seen so far, never a whole body.
 *
 * Per scrape it guarantees:
 * - a family (its `# TYPE`/`# HELP`/`# UNIT` lines and its samples) already emitted by an
 *   earlier source is dropped from a later one, and reported in `SourceStats.droppedFamilies`;
 *   samples are matched to families by name (`_bucket`, `_sum`, `_count`, `_total`,
 *   `_created`, … per the family's type), wherever they sit in the body;
 * - every emitted line ends with `\n` (a body without a final newline gets one); empty lines
 *   and `# EOF` lines are removed; `finish()` returns the single `# EOF` that ends an
 *   OpenMetrics body;
 * - in OpenMetrics mode, free-form comments are removed and `untyped` becomes `unknown`;
 * - a line that cannot be a sample or comment is dropped and counted in `invalidLines`.
 *
 * Verbatim mode (`begin(source, { verbatim: true })`, used for Envoy's large body): sample
 * lines are passed through as slices of the chunk without being parsed while no family of the
 * source has been dropped. Only lines that do not start with a name character (comments:
 * every `# TYPE`/`# HELP` is still checked against the earlier sources and recorded; empty and
 * indented lines, `{`-named samples, garbage) and samples whose name starts like a name an
 * earlier source claimed (first 8 bytes) go through the line-by-line path, so collisions are
 * decided exactly as there; once a family is dropped, every following line does (its samples
 * may sit anywhere). Finding them is one pass over the lines' first bytes.
 * Trade-offs, by design: a sample line of a verbatim run is not validated and not counted in
 * `emittedLines`; and instead of the sample names it emitted, a typed family claims its name
 * plus every sample name its type allows (a sample with no `# TYPE` in a verbatim run is not
 * claimed for later sources).
 */
import { ALL_SUFFIXES, describeInvalidLine, isValidExpositionLine, parseFamilyType, suffixesFor, type FamilyType } from './exposition.js';

export interface MergerOptions {
  /** The merged body is OpenMetrics (else text 0.0.4). */
  openMetrics: boolean;
  /**
   * Also check every line of the non-verbatim sources with `isValidExpositionLine` (the strict
   * syntax check an application body must pass): the first failure is kept in `problem`.
   */
  validate?: boolean;
  /** Longest line accepted; a longer one is dropped as invalid (default 1 MiB). */
  maxLineBytes?: number;
}

export interface SourceOptions {
  /** Pass ordinary sample lines through unparsed (see the module comment). */
  verbatim?: boolean;
}

export interface SourceStats {
  source: string;
  /** Families dropped because an earlier source emitted them. */
  droppedFamilies: string[];
  /** Lines dropped because they were not exposition lines. */
  invalidLines: number;
  /** Lines emitted (in verbatim mode, only those that took the line-by-line path). */
  emittedLines: number;
}

const NL = 0x0a;
const CR = 0x0d;
const HASH = 0x23;
const SPACE = 0x20;
const TAB = 0x09;
const BRACE = 0x7b;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const NEWLINE = Buffer.from('\n');
const EOF_LINE = Buffer.from('# EOF\n');

/** Family type recorded for a name; `null` = a family seen only through HELP/UNIT so far. */
type FamilyEntry = FamilyType | null;

/** What a finished source emitted, claimed for the sources after it. */
interface Claims {
  families: Map<string, FamilyEntry>;
  samples: Set<string>;
  dropped: Set<string>;
  verbatim: boolean;
  /**
   * Families checked against earlier sources with every suffix (those with a HELP or UNIT
   * line, or a TYPE line of an unknown type); the others were checked with their type's.
   */
  wide: Set<string>;
}

/**
 * A source merged ahead of its turn, on its own (see `PreparedSourceBuilder`): its output as
 * if no source came before it, its stats and its claims. `ExpositionMerger.adopt` emits it
 * as is when none of its names collides with an earlier source's.
 */
export interface PreparedSource {
  readonly source: string;
  readonly out: Buffer[];
  readonly stats: SourceStats;
  readonly claims: Claims;
}

const ALL_SUFFIXES_MASK = (1 << ALL_SUFFIXES.length) - 1;

export class ExpositionMerger {
  private readonly openMetrics: boolean;
  private readonly maxLine: number;
  private readonly validate: boolean;
  /** With `validate`: the first invalid line of the current source, as a report; its line count. */
  problem: string | undefined;
  private lineNo = 0;

  /** Names emitted by finished sources: family names (from descriptors) and sample names. */
  private readonly earlierFamilies = new Map<string, FamilyEntry>();
  private readonly earlierSamples = new Set<string>();
  /** For each earlier name `<base><suffix>`: base → bitmask of the suffixes seen (see SUFFIX_BITS). */
  private readonly earlierBases = new Map<string, number>();
  private pendingClaims: Claims | undefined;
  /** The current source is in verbatim mode; the claimed-name prefixes by first byte (see verbatimPrefixes). */
  private verbatim = false;
  private prefixes: (Buffer[] | undefined)[] = [];
  /** The last sample name seen and its decision: consecutive samples mostly share a name. */
  private lastName = '';
  private lastKeep = true;

  private source: string | undefined;
  private families = new Map<string, FamilyEntry>();
  private samples = new Set<string>();
  private dropped = new Set<string>();
  private wide = new Set<string>();
  private decisions = new Map<string, boolean>();
  private stats: SourceStats | undefined;
  private tail: Buffer | undefined;
  private skippingLongLine = false;

  constructor(options: MergerOptions) {
    this.openMetrics = options.openMetrics;
    this.maxLine = options.maxLineBytes ?? 1024 * 1024;
    this.validate = options.validate === true;
  }

  /** Starts the next source. */
  begin(source: string, options: SourceOptions = {}): void {
    if (this.source !== undefined) throw new Error(`merger: source ${this.source} not ended`);
    this.foldClaims();
    this.source = source;
    this.verbatim = options.verbatim === true;
    this.prefixes = this.verbatim ? this.verbatimPrefixes() : [];
    this.families = new Map();
    this.samples = new Set();
    this.dropped = new Set();
    this.wide = new Set();
    this.decisions = new Map();
    this.stats = { source, droppedFamilies: [], invalidLines: 0, emittedLines: 0 };
    this.tail = undefined;
    this.skippingLongLine = false;
    this.problem = undefined;
    this.lineNo = 0;
  }

  /** Feeds a chunk of the current source; returns the complete lines to emit. */
  write(chunk: Uint8Array): Buffer[] {
    this.assertActive();
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const out: Buffer[] = [];
    let pos = 0;
    if (this.tail !== undefined || this.skippingLongLine) {
      const nl = buf.indexOf(NL);
      if (nl < 0) {
        this.extendTail(buf);
        return out;
      }
      if (this.skippingLongLine) {
        this.skippingLongLine = false;
      } else {
        const line = Buffer.concat([this.tail as Buffer, buf.subarray(0, nl + 1)]);
        this.tail = undefined;
        if (line.length - 1 > this.maxLine) {
          this.longLineProblem();
          this.invalid();
        } else this.processRange(line, 0, line.length, out);
      }
      pos = nl + 1;
    }
    const lastNl = buf.lastIndexOf(NL);
    if (lastNl >= pos) {
      if (this.verbatim) this.processRangeVerbatim(buf, pos, lastNl + 1, out);
      else this.processRange(buf, pos, lastNl + 1, out);
      pos = lastNl + 1;
    }
    if (pos < buf.length) this.extendTail(buf.subarray(pos));
    return out;
  }

  /** Ends the current source normally: emits its last line even without a final newline. */
  end(): { out: Buffer[]; stats: SourceStats } {
    this.assertActive();
    const out: Buffer[] = [];
    if (this.tail !== undefined && !this.skippingLongLine) {
      const line = Buffer.concat([this.tail, NEWLINE]);
      this.processRange(line, 0, line.length, out);
    }
    return { out, stats: this.close() };
  }

  /** Ends the current source after an error: a partial last line is discarded. */
  abort(): SourceStats {
    this.assertActive();
    return this.close();
  }

  /** What ends the merged body: `# EOF` for OpenMetrics, nothing for text. */
  finish(): Buffer[] {
    if (this.source !== undefined) throw new Error(`merger: source ${this.source} not ended`);
    return this.openMetrics ? [EOF_LINE] : [];
  }

  /**
   * Ends the source. Whatever it emitted (even when cut short) belongs to it for later
   * sources; the claims are folded in lazily by the next `begin`, so the last source costs
   * nothing here.
   */
  private close(): SourceStats {
    const stats = this.stats as SourceStats;
    stats.droppedFamilies = [...this.dropped];
    this.pendingClaims = { families: this.families, samples: this.samples, dropped: this.dropped, verbatim: this.verbatim, wide: this.wide };
    this.source = undefined;
    this.verbatim = false;
    this.prefixes = [];
    this.tail = undefined;
    this.skippingLongLine = false;
    this.families = new Map();
    this.samples = new Set();
    this.dropped = new Set();
    this.wide = new Set();
    this.decisions = new Map();
    this.lastName = '';
    return stats;
  }

  /**
   * Takes a source prepared on its own as the next source: returns its output and stats when
   * none of its family or sample names collides with an earlier source's (then the
   * line-by-line path would have emitted exactly that output), else undefined and nothing
   * changes (feed the source's body through `begin`/`write`/`end` instead). The check walks
   * the earlier sources' names, not the prepared source's: its cost does not grow with the
   * prepared body.
   */
  adopt(prepared: PreparedSource): { out: Buffer[]; stats: SourceStats } | undefined {
    if (this.source !== undefined) throw new Error(`merger: source ${this.source} not ended`);
    if (prepared.claims.dropped.size > 0) throw new Error('merger: a prepared source has no earlier sources to lose to');
    this.foldClaims();
    if (this.collidesWithEarlier(prepared.claims)) return undefined;
    this.pendingClaims = prepared.claims;
    return { out: prepared.out, stats: prepared.stats };
  }

  /** The claims of the source just ended (for `PreparedSourceBuilder`). */
  takePendingClaims(): Claims {
    const claims = this.pendingClaims;
    if (!claims) throw new Error('merger: no ended source');
    this.pendingClaims = undefined;
    return claims;
  }

  /**
   * Would the line-by-line path drop anything from a source with these claims? The same
   * predicates as `conflictsWithEarlierFamily` (per family) and `earlierOwnerOf` (per
   * sample), enumerated from the earlier names' side.
   */
  private collidesWithEarlier(later: Claims): boolean {
    const { families, samples, wide } = later;
    for (const [name, type] of this.earlierFamilies) {
      if (families.has(name) || samples.has(name)) return true;
      for (const sfx of type === null ? ALL_SUFFIXES : suffixesFor(type)) if (samples.has(name + sfx)) return true;
    }
    for (const name of this.earlierSamples) if (families.has(name) || samples.has(name)) return true;
    for (const [base, bits] of this.earlierBases) {
      const type = families.get(base);
      if (type === undefined) continue;
      const mask = wide.has(base) || type === null ? ALL_SUFFIXES_MASK : suffixMask(type);
      if ((bits & mask) !== 0) return true;
    }
    return false;
  }

  private foldClaims(): void {
    const pending = this.pendingClaims;
    if (!pending) return;
    this.pendingClaims = undefined;
    for (const [name, type] of pending.families) {
      if (pending.dropped.has(name)) continue;
      this.earlierFamilies.set(name, type);
      this.noteBase(name);
      // Verbatim sources did not record their sample names: claim the ones the type allows.
      if (pending.verbatim && type !== null) {
        for (const sfx of suffixesFor(type)) pending.samples.add(name + sfx);
      }
    }
    for (const name of pending.samples) {
      this.earlierSamples.add(name);
      this.noteBase(name);
    }
  }

  private assertActive(): void {
    if (this.source === undefined) throw new Error('merger: no source begun');
  }

  private extendTail(part: Buffer): void {
    if (this.skippingLongLine) return;
    const len = (this.tail?.length ?? 0) + part.length;
    if (len > this.maxLine) {
      this.tail = undefined;
      this.skippingLongLine = true;
      this.longLineProblem();
      this.invalid();
      return;
    }
    // Copy: the tail must not pin the (possibly large) chunk it came from.
    this.tail = this.tail === undefined ? Buffer.from(part) : Buffer.concat([this.tail, part]);
  }

  /**
   * Verbatim mode: for each first byte, the prefixes (first bytes, at most 8) of the names an
   * earlier source claimed that start with it. A sample colliding with an earlier name starts
   * with one of them (it matters for a sample that precedes its dropped family's `# TYPE`,
   * which the real istio-proxy capture has).
   */
  private verbatimPrefixes(): (Buffer[] | undefined)[] {
    const prefixes = new Set<string>();
    const add = (name: string) => {
      const bytes = Buffer.from(name, 'utf8');
      prefixes.add(bytes.subarray(0, Math.min(bytes.length, 8)).toString('latin1'));
    };
    for (const name of this.earlierFamilies.keys()) add(name);
    for (const name of this.earlierSamples) add(name);
    const byFirst: (Buffer[] | undefined)[] = [];
    // A prefix that starts with another prefix is covered by it.
    const kept: string[] = [];
    for (const p of [...prefixes].sort((a, b) => a.length - b.length)) {
      if (kept.some((k) => p.startsWith(k))) continue;
      kept.push(p);
      (byFirst[p.charCodeAt(0)] ??= []).push(Buffer.from(p, 'latin1'));
    }
    return byFirst;
  }

  /**
   * Verbatim mode over complete lines buf[from, to): one pass over the lines' first bytes
   * (on the bytes: no string is made of the run). A line that does not start with a name
   * character (a comment, an empty or indented line, a `{"quoted"}` sample, garbage) or that
   * starts like a name an earlier source claimed takes the careful path; the runs between are
   * emitted as slices. Once a family of the source is dropped, the rest is processed line by line.
   */
  private processRangeVerbatim(buf: Buffer, from: number, to: number, out: Buffer[]): void {
    if (this.dropped.size > 0) {
      this.processRange(buf, from, to, out);
      return;
    }
    const prefixes = this.prefixes;
    let runStart = from;
    let ls = from;
    while (ls < to) {
      let nl = buf.indexOf(NL, ls);
      if (nl < 0 || nl >= to) nl = to - 1;
      const c = buf[ls] as number;
      let careful = !isNameStart(c);
      if (!careful) {
        const ps = prefixes[c];
        if (ps !== undefined) for (let i = 0; i < ps.length && !careful; i++) careful = startsWithBytes(buf, ls, nl, ps[i] as Buffer);
      }
      if (careful) {
        if (ls > runStart) out.push(buf.subarray(runStart, ls));
        this.processRange(buf, ls, nl + 1, out);
        runStart = nl + 1;
        if (this.dropped.size > 0) {
          if (runStart < to) this.processRange(buf, runStart, to, out);
          return;
        }
      }
      ls = nl + 1;
    }
    if (to > runStart) out.push(buf.subarray(runStart, to));
  }

  private invalid(): void {
    (this.stats as SourceStats).invalidLines++;
  }

  /** `validate`: the line that starts a too-long run. */
  private longLineProblem(): void {
    if (this.validate && this.problem === undefined) this.problem = `line ${this.lineNo + 1} is longer than ${this.maxLine} bytes`;
  }

  /**
   * Processes complete lines buf[from, to) (`to` is just past a newline); pushes kept runs.
   * Scanning works on a latin1 string of the range (one byte = one char, so offsets map
   * 1:1 back to the bytes, which are emitted untouched).
   */
  private processRange(buf: Buffer, from: number, to: number, out: Buffer[]): void {
    const stats = this.stats as SourceStats;
    const str = buf.toString('latin1', from, to);
    const len = str.length;
    let runStart = 0;
    let ls = 0;
    while (ls < len) {
      let nl = str.indexOf('\n', ls);
      if (nl < 0) nl = len - 1;
      this.lineNo++;
      if (this.validate && this.problem === undefined) {
        const e = nl > ls && str.charCodeAt(nl - 1) === CR ? nl - 1 : nl;
        const line = str.slice(ls, e);
        if (!isValidExpositionLine(line)) this.problem = describeInvalidLine(this.lineNo, line);
      }
      const verdict = this.classify(str, ls, nl);
      if (verdict === true) {
        stats.emittedLines++;
      } else {
        if (ls > runStart) out.push(buf.subarray(from + runStart, from + ls));
        if (verdict !== false) {
          out.push(verdict);
          stats.emittedLines++;
        }
        runStart = nl + 1;
      }
      ls = nl + 1;
    }
    if (len > runStart) out.push(buf.subarray(from + runStart, to));
  }

  /** true = keep as is; false = drop; Buffer = emit this replacement line instead. */
  private classify(str: string, start: number, nl: number): boolean | Buffer {
    let end = nl;
    if (end > start && str.charCodeAt(end - 1) === CR) end--;
    let s = start;
    let c = str.charCodeAt(s);
    while (s < end && (c === SPACE || c === TAB)) c = str.charCodeAt(++s);
    if (s === end) return false;
    if (c === HASH) return this.classifyComment(str.slice(s, end));
    return this.classifySample(str, s, end);
  }

  private classifyComment(text: string): boolean | Buffer {
    const d = parseDescriptor(text);
    if (d === undefined) return !this.openMetrics; // a free-form comment
    const keyword = d.keyword;
    if (keyword === 'EOF') return d.rawName === undefined ? false : !this.openMetrics;
    if (d.rawName === undefined) {
      this.invalid();
      return false;
    }
    const name = d.rawName.startsWith('"') ? utf8(d.rawName.slice(1, -1)) : ownString(d.rawName);
    if (keyword === 'TYPE') {
      const type = parseFamilyType(d.rest);
      if (type === undefined) this.wide.add(name);
      // Recorded even when dropped, so its samples resolve to it.
      this.families.set(name, type ?? null);
      if (this.dropped.has(name)) return false;
      if (this.conflictsWithEarlierFamily(name, type)) {
        this.drop(name);
        return false;
      }
      if (this.openMetrics && type === 'untyped') return Buffer.from(`# TYPE ${d.rawName} unknown\n`, 'latin1');
      return true;
    }
    // HELP / UNIT
    if (!this.families.has(name)) this.families.set(name, null);
    this.wide.add(name);
    if (this.dropped.has(name)) return false;
    if (this.conflictsWithEarlierFamily(name, undefined)) {
      this.drop(name);
      return false;
    }
    return true;
  }

  private classifySample(str: string, s: number, end: number): boolean {
    let name: string;
    let e = s;
    const first = str.charCodeAt(s);
    if (first === BRACE) {
      // `{"utf8.name", label="v"} 1`: the name is the first quoted string inside the braces.
      let q = s + 1;
      while (q < end && (str.charCodeAt(q) === SPACE || str.charCodeAt(q) === TAB)) q++;
      if (str.charCodeAt(q) !== QUOTE) {
        this.invalid();
        return false;
      }
      let k = q + 1;
      while (k < end && str.charCodeAt(k) !== QUOTE) k += str.charCodeAt(k) === BACKSLASH ? 2 : 1;
      name = utf8(str.slice(q + 1, Math.min(k, end)));
      e = k;
    } else {
      if (!isNameStart(first)) {
        this.invalid();
        return false;
      }
      const last = this.lastName;
      const after = s + last.length;
      if (last !== '' && after < end && str.startsWith(last, s) && isNameEnd(str.charCodeAt(after))) {
        // Same name as the previous sample (histogram buckets, per-cluster series…).
        return this.valuePresent(str, after, end) ? this.lastKeep : this.invalidSample();
      }
      for (; e < end; e++) {
        const c = str.charCodeAt(e);
        if (c === BRACE || c === SPACE || c === TAB) break;
      }
      name = str.slice(s, e);
    }
    if (name === '' || !this.valuePresent(str, e, end)) return this.invalidSample();
    let keep = this.decisions.get(name);
    if (keep === undefined) {
      // Own copy: a slice would keep the whole chunk's string alive in the maps.
      name = ownString(name);
      keep = this.decideSample(name);
      this.decisions.set(name, keep);
    }
    this.lastName = name;
    this.lastKeep = keep;
    return keep;
  }

  /** A sample needs a value after its name (and labels): some whitespace before the end. */
  private valuePresent(str: string, e: number, end: number): boolean {
    let v = end;
    while (v > e && (str.charCodeAt(v - 1) === SPACE || str.charCodeAt(v - 1) === TAB)) v--;
    for (let k = v - 1; k >= e; k--) {
      const c = str.charCodeAt(k);
      if (c === SPACE || c === TAB) return true;
    }
    return false;
  }

  private invalidSample(): false {
    this.invalid();
    return false;
  }

  /** `name` must be an own string (it is kept in the maps). */
  private decideSample(name: string): boolean {
    const family = this.currentFamilyOf(name);
    if (family !== undefined && this.dropped.has(family)) return false;
    const earlier = this.earlierOwnerOf(name);
    if (earlier !== undefined) {
      this.drop(family ?? earlier);
      return false;
    }
    this.samples.add(name);
    return true;
  }

  /** The family of the current source a sample name belongs to, if any. */
  private currentFamilyOf(name: string): string | undefined {
    if (this.families.has(name)) return name;
    for (const sfx of suffixesFor(undefined)) {
      if (!name.endsWith(sfx)) continue;
      const base = name.slice(0, -sfx.length);
      const type = this.families.get(base);
      if (type === undefined) continue;
      if (type === null || suffixesFor(type).includes(sfx)) return base;
    }
    return undefined;
  }

  /** The earlier family (or sample name) that already owns this sample name, if any. */
  private earlierOwnerOf(name: string): string | undefined {
    if (this.earlierFamilies.has(name)) return name;
    for (const sfx of suffixesFor(undefined)) {
      if (!name.endsWith(sfx)) continue;
      const base = name.slice(0, -sfx.length);
      const type = this.earlierFamilies.get(base);
      if (type === undefined) continue;
      if (type === null || suffixesFor(type).includes(sfx)) return base;
    }
    return this.earlierSamples.has(name) ? name : undefined;
  }

  /** Would family `name` of `type` collide with a name an earlier source emitted? */
  private conflictsWithEarlierFamily(name: string, type: FamilyType | undefined): boolean {
    if (this.earlierFamilies.has(name) || this.earlierSamples.has(name)) return true;
    const seen = this.earlierBases.get(name);
    return seen !== undefined && (seen & suffixMask(type)) !== 0;
  }

  private noteBase(name: string): void {
    for (let i = 0; i < ALL_SUFFIXES.length; i++) {
      const sfx = ALL_SUFFIXES[i] as string;
      if (!name.endsWith(sfx)) continue;
      const base = name.slice(0, -sfx.length);
      this.earlierBases.set(base, (this.earlierBases.get(base) ?? 0) | (1 << i));
    }
  }

  private drop(family: string): void {
    if (!this.dropped.has(family)) {
      this.dropped.add(family);
      // A cached "keep" may now belong to a dropped family.
      this.decisions.clear();
      this.lastName = '';
    }
  }
}

/**
 * Merges one source on its own while an earlier source is still streaming, so that its turn
 * costs only `ExpositionMerger.adopt` (used for the application's buffered body). Its output
 * holds slices of the chunks written, not copies.
 */
export class PreparedSourceBuilder {
  private readonly merger: ExpositionMerger;
  private readonly out: Buffer[] = [];
  private readonly validate: boolean;

  constructor(
    private readonly source: string,
    options: MergerOptions,
  ) {
    this.merger = new ExpositionMerger(options);
    this.validate = options.validate === true;
    this.merger.begin(source);
  }

  /**
   * Feeds a chunk; returns the first problem that makes the body not an exposition (with
   * `validate`): NUL bytes, or an invalid or over-long line. Feed no more after one.
   */
  write(chunk: Uint8Array): string | undefined {
    if (this.validate && Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).includes(0)) return 'body contains NUL bytes';
    for (const b of this.merger.write(chunk)) this.out.push(b);
    return this.merger.problem;
  }

  /** Ends the source; with `validate`, the problem of its last line (if any) is in `problem`. */
  end(): PreparedSource & { problem: string | undefined } {
    const end = this.merger.end();
    const problem = this.merger.problem;
    for (const b of end.out) this.out.push(b);
    return { source: this.source, out: this.out, stats: end.stats, claims: this.merger.takePendingClaims(), problem };
  }
}

/** Bitmask over ALL_SUFFIXES of the suffixes a family of `type` may use (all when unknown). */
function suffixMask(type: FamilyType | undefined): number {
  let mask = 0;
  for (const sfx of suffixesFor(type)) mask |= 1 << ALL_SUFFIXES.indexOf(sfx);
  return mask;
}

interface Descriptor {
  keyword: 'HELP' | 'TYPE' | 'UNIT' | 'EOF';
  /** As written (quoted names keep their quotes); undefined when missing. */
  rawName: string | undefined;
  /** The rest of the line, trimmed. */
  rest: string;
}

/** `# HELP|TYPE|UNIT <name> <rest>` or `# EOF`; undefined for any other comment. */
function parseDescriptor(text: string): Descriptor | undefined {
  let i = 1;
  while (isBlank(text.charCodeAt(i))) i++;
  if (i === 1) return undefined;
  let keyword: Descriptor['keyword'] | undefined;
  for (const k of ['TYPE', 'HELP', 'UNIT', 'EOF'] as const) {
    if (text.startsWith(k, i) && (i + k.length === text.length || isBlank(text.charCodeAt(i + k.length)))) keyword = k;
  }
  if (keyword === undefined) return undefined;
  i += keyword.length;
  while (isBlank(text.charCodeAt(i))) i++;
  if (i >= text.length) return { keyword, rawName: undefined, rest: '' };
  let j = i;
  if (text.charCodeAt(i) === QUOTE) {
    j++;
    while (j < text.length && text.charCodeAt(j) !== QUOTE) j += text.charCodeAt(j) === BACKSLASH ? 2 : 1;
    j = Math.min(j + 1, text.length);
  } else {
    while (j < text.length && !isBlank(text.charCodeAt(j))) j++;
  }
  return { keyword, rawName: text.slice(i, j), rest: text.slice(j).trim() };
}

function isBlank(c: number): boolean {
  return c === SPACE || c === TAB;
}

/** A copy of a (sliced) string that does not retain its parent. */
function ownString(s: string): string {
  return Buffer.from(s, 'latin1').toString('latin1');
}

/** buf[at, end) starts with `prefix`. */
function startsWithBytes(buf: Buffer, at: number, end: number, prefix: Buffer): boolean {
  if (end - at < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[at + i] !== prefix[i]) return false;
  return true;
}

function isNameEnd(c: number): boolean {
  return c === BRACE || c === SPACE || c === TAB;
}

function isNameStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c === 0x3a;
}

/** A name scanned as latin1 back to its UTF-8 text (quoted names may hold any UTF-8); an own string. */
function utf8(latin1: string): string {
  return Buffer.from(latin1, 'latin1').toString('utf8');
}

/**
 * Checks a whole body as the application's is checked (a validating `PreparedSourceBuilder`):
 * undefined when it is an exposition, else the first problem (NUL bytes, an invalid or
 * over-long line, with its number).
 */
export function validateExposition(chunks: readonly Uint8Array[]): string | undefined {
  const builder = new PreparedSourceBuilder('check', { openMetrics: false, validate: true });
  for (const chunk of chunks) {
    const problem = builder.write(chunk);
    if (problem !== undefined) return problem;
  }
  return builder.end().problem;
}
