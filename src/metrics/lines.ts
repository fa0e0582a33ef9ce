/**
 * PURE line framing for the merger: chunks split anywhere → complete lines, with a cap on a
 * line's length, plus the byte-level helpers the merger scans lines with (names, comments).
 * A partial line is carried as a copy (it must not pin the chunk it came from); an over-long
 * line is skipped up to its newline and reported once.
 */

export const NL = 0x0a;
export const CR = 0x0d;
export const HASH = 0x23;
export const SPACE = 0x20;
export const TAB = 0x09;
export const BRACE = 0x7b;
export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
const NEWLINE = Buffer.from('\n');

/** Where `LineFramer.push` delivers what it found. */
export interface LineSink {
  /** Complete lines buf[from, to): `to` is just past a newline; `buf` may be the chunk itself. */
  lines(buf: Buffer, from: number, to: number, joined: boolean): void;
  /** A line longer than the cap was dropped (reported when it is first seen to be too long). */
  tooLong(): void;
}

export class LineFramer {
  private tail: Buffer | undefined;
  private skipping = false;

  constructor(private readonly maxLine: number) {}

  /**
   * Splits a chunk: the line completed from the carried tail first (`joined`: a new buffer
   * holding only that line), then all complete lines of the chunk as one range; the rest
   * is carried.
   */
  push(buf: Buffer, sink: LineSink): void {
    let pos = 0;
    if (this.tail !== undefined || this.skipping) {
      const nl = buf.indexOf(NL);
      if (nl < 0) {
        this.extendTail(buf, sink);
        return;
      }
      if (this.skipping) {
        this.skipping = false;
      } else {
        const line = Buffer.concat([this.tail as Buffer, buf.subarray(0, nl + 1)]);
        this.tail = undefined;
        if (line.length - 1 > this.maxLine) sink.tooLong();
        else sink.lines(line, 0, line.length, true);
      }
      pos = nl + 1;
    }
    const lastNl = buf.lastIndexOf(NL);
    if (lastNl >= pos) {
      sink.lines(buf, pos, lastNl + 1, false);
      pos = lastNl + 1;
    }
    if (pos < buf.length) this.extendTail(buf.subarray(pos), sink);
  }

  /** The carried partial line with a newline added (a body without a final newline), if any. */
  flush(): Buffer | undefined {
    const line = this.tail !== undefined && !this.skipping ? Buffer.concat([this.tail, NEWLINE]) : undefined;
    this.reset();
    return line;
  }

  /** Forgets the carried partial line. */
  reset(): void {
    this.tail = undefined;
    this.skipping = false;
  }

  private extendTail(part: Buffer, sink: LineSink): void {
    if (this.skipping) return;
    const len = (this.tail?.length ?? 0) + part.length;
    if (len > this.maxLine) {
      this.tail = undefined;
      this.skipping = true;
      sink.tooLong();
      return;
    }
    // Copy: the tail must not pin the (possibly large) chunk it came from.
    this.tail = this.tail === undefined ? Buffer.from(part) : Buffer.concat([this.tail, part]);
  }
}

export interface Descriptor {
  keyword: 'HELP' | 'TYPE' | 'UNIT' | 'EOF';
  /** As written (quoted names keep their quotes); undefined when missing. */
  rawName: string | undefined;
  /** The rest of the line, trimmed. */
  rest: string;
}

/** `# HELP|TYPE|UNIT <name> <rest>` or `# EOF`; undefined for any other comment. */
export function parseDescriptor(text: string): Descriptor | undefined {
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
export function ownString(s: string): string {
  return Buffer.from(s, 'latin1').toString('latin1');
}

/** buf[at, end) starts with `prefix`. */
export function startsWithBytes(buf: Buffer, at: number, end: number, prefix: Buffer): boolean {
  if (end - at < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[at + i] !== prefix[i]) return false;
  return true;
}

export function isNameEnd(c: number): boolean {
  return c === BRACE || c === SPACE || c === TAB;
}

export function isNameStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c === 0x3a;
}

/** A name scanned as latin1 back to its UTF-8 text (quoted names may hold any UTF-8); an own string. */
export function utf8(latin1: string): string {
  return Buffer.from(latin1, 'latin1').toString('utf8');
}

/**
 * `{"utf8.name", label="v"} 1` starting at `s`: the name (the first quoted string inside the
 * braces, as UTF-8) and the offset of its closing quote; undefined when there is no quoted name.
 */
export function scanBracedName(str: string, s: number, end: number): [string, number] | undefined {
  let q = s + 1;
  while (q < end && (str.charCodeAt(q) === SPACE || str.charCodeAt(q) === TAB)) q++;
  if (str.charCodeAt(q) !== QUOTE) return undefined;
  let k = q + 1;
  while (k < end && str.charCodeAt(k) !== QUOTE) k += str.charCodeAt(k) === BACKSLASH ? 2 : 1;
  return [utf8(str.slice(q + 1, Math.min(k, end))), k];
}

/** A sample needs a value after its name (and labels) at `e`: some whitespace before the end. */
export function hasValue(str: string, e: number, end: number): boolean {
  let v = end;
  while (v > e && (str.charCodeAt(v - 1) === SPACE || str.charCodeAt(v - 1) === TAB)) v--;
  for (let k = v - 1; k >= e; k--) {
    const c = str.charCodeAt(k);
    if (c === SPACE || c === TAB) return true;
  }
  return false;
}
