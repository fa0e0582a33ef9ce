/**
 * PURE streaming merger of Prometheus expositions (SPEC §6.2; rules in ./README.md).
 *
 * Sources are fed one after another (`begin` → `write`* → `end` | `abort`), as raw byte
 * chunks split anywhere; the merger works line by line and returns the bytes to emit,
 * mostly as zero-copy slices of the input. It holds at most one partial line (`LineFramer`,
 * ./lines.ts) plus the names claimed so far (`EarlierClaims`, ./claims.ts), never a whole body.
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
import { type Claims, EarlierClaims, type FamilyEntry, familyOf } from './claims.js';
import { describeInvalidLine, isValidExpositionLine, parseFamilyType } from './exposition.js';
import { BRACE, CR, HASH, hasValue, isNameEnd, isNameStart, LineFramer, type LineSink, NL, ownString, parseDescriptor, scanBracedName, SPACE, startsWithBytes, TAB, utf8 } from './lines.js';

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

const EOF_LINE = Buffer.from('# EOF\n');

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

export class ExpositionMerger {
  private readonly openMetrics: boolean;
  private readonly maxLine: number;
  private readonly validate: boolean;
  /** With `validate`: the first invalid line of the current source, as a report; its line count. */
  problem: string | undefined;
  private lineNo = 0;

  /** Names emitted by finished sources. */
  private readonly earlier = new EarlierClaims();
  private pendingClaims: Claims | undefined;
  /** The current source is in verbatim mode; the claimed-name prefixes by first byte (see EarlierClaims.prefixesByFirstByte). */
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
  private readonly framer: LineFramer;
  /** Receives the framer's lines during `write`; `out` is that call's output. */
  private readonly sink: LineSink & { out: Buffer[] };

  constructor(options: MergerOptions) {
    this.openMetrics = options.openMetrics;
    this.maxLine = options.maxLineBytes ?? 1024 * 1024;
    this.validate = options.validate === true;
    this.framer = new LineFramer(this.maxLine);
    this.sink = {
      out: [],
      lines: (b, from, to, joined) => {
        if (this.verbatim && !joined) this.processRangeVerbatim(b, from, to, this.sink.out);
        else this.processRange(b, from, to, this.sink.out);
      },
      tooLong: () => {
        this.longLineProblem();
        this.invalid();
      },
    };
  }

  /** Starts the next source. */
  begin(source: string, options: SourceOptions = {}): void {
    if (this.source !== undefined) throw new Error(`merger: source ${this.source} not ended`);
    this.foldClaims();
    this.source = source;
    this.verbatim = options.verbatim === true;
    this.prefixes = this.verbatim ? this.earlier.prefixesByFirstByte() : [];
    this.families = new Map();
    this.samples = new Set();
    this.dropped = new Set();
    this.wide = new Set();
    this.decisions = new Map();
    this.stats = { source, droppedFamilies: [], invalidLines: 0, emittedLines: 0 };
    this.framer.reset();
    this.problem = undefined;
    this.lineNo = 0;
  }

  /** Feeds a chunk of the current source; returns the complete lines to emit. */
  write(chunk: Uint8Array): Buffer[] {
    this.assertActive();
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const out: Buffer[] = [];
    this.sink.out = out;
    this.framer.push(buf, this.sink);
    return out;
  }

  /** Ends the current source normally: emits its last line even without a final newline. */
  end(): { out: Buffer[]; stats: SourceStats } {
    this.assertActive();
    const out: Buffer[] = [];
    const line = this.framer.flush();
    if (line !== undefined) this.processRange(line, 0, line.length, out);
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
    this.framer.reset();
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
    if (this.earlier.collidesWith(prepared.claims)) return undefined;
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

  private foldClaims(): void {
    const pending = this.pendingClaims;
    if (!pending) return;
    this.pendingClaims = undefined;
    this.earlier.add(pending);
  }

  private assertActive(): void {
    if (this.source === undefined) throw new Error('merger: no source begun');
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
      if (this.earlier.conflictsWithFamily(name, type)) {
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
    if (this.earlier.conflictsWithFamily(name, undefined)) {
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
      const braced = scanBracedName(str, s, end);
      if (braced === undefined) return this.invalidSample();
      [name, e] = braced;
    } else {
      if (!isNameStart(first)) {
        this.invalid();
        return false;
      }
      const last = this.lastName;
      const after = s + last.length;
      if (last !== '' && after < end && str.startsWith(last, s) && isNameEnd(str.charCodeAt(after))) {
        // Same name as the previous sample (histogram buckets, per-cluster series…).
        return hasValue(str, after, end) ? this.lastKeep : this.invalidSample();
      }
      for (; e < end; e++) {
        const c = str.charCodeAt(e);
        if (c === BRACE || c === SPACE || c === TAB) break;
      }
      name = str.slice(s, e);
    }
    if (name === '' || !hasValue(str, e, end)) return this.invalidSample();
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

  private invalidSample(): false {
    this.invalid();
    return false;
  }

  /** `name` must be an own string (it is kept in the maps). */
  private decideSample(name: string): boolean {
    const family = familyOf(this.families, name);
    if (family !== undefined && this.dropped.has(family)) return false;
    const earlier = this.earlier.ownerOf(name);
    if (earlier !== undefined) {
      this.drop(family ?? earlier);
      return false;
    }
    this.samples.add(name);
    return true;
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
