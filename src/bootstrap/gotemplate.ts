/**
 * PURE: a documented subset of Go's `text/template` (SPEC §4), so an Istio custom bootstrap
 * template that stays within the subset renders byte-for-byte as Istio renders it.
 *
 * Contract:
 * - `parseTemplate(text, name)` lexes and parses once. Everything outside the subset fails
 *   HERE, never at render time, with `AgentError('BOOTSTRAP_TEMPLATE_INVALID')` and a message
 *   `template "<name>" line <n>: <what>`; the construct is named (`"with" is not supported (...)`).
 *   Go's own syntax errors are reported the same way with Go's wording (`unexpected EOF`, ...).
 * - `Template.render(data)` is pure and re-entrant: no I/O, no state kept between renders.
 *   It throws the same error class (with the line of the offending action) when the data does
 *   not fit: printing a value that is not provided, printing a list/map, ranging over a scalar,
 *   comparing incomparable values, evaluating a field of a non-map.
 *
 * The subset (the lexer is a port of Go's, so trimming and tokenising are Go's exactly):
 * - text; `{{/* comment *\/}}`; trim markers `{{- ` and ` -}}` (the marker must be followed /
 *   preceded by an ASCII space, tab, CR or LF, as in Go; `{{-3}}` is the number -3);
 * - actions printing a pipeline: `.`, `.a.b`, `$`, `$v`, `$v.a`, `(pipeline).a`, string / raw
 *   string / number / bool literals, calls `fn arg...`, pipelines `x | fn a | fn b` (the piped
 *   value is the LAST argument), parenthesised sub-pipelines;
 * - `if` / `else if` / `else` / `end`; `range` with `$v :=` or `$i, $v :=`, and `else`;
 * - functions `and`, `or` (short-circuit, return the deciding operand), `not`, `eq` (`eq a b c`
 *   = a==b || a==c), `ne`, `js` (Go's JSEscapeString), `toJSON` (Istio's: json.Marshal, nil and
 *   errors give `{}`), `toJson` (sprig's: json.Marshal, errors give "").
 *
 * Data model (JS value → Go value): a plain object or Map is a `map[string]any` (fields are
 * keys; iteration in sorted key order); an array is a slice; string / boolean are themselves;
 * a safe integer or a bigint is an `int`, any other number a `float64` (printed like Go's
 * `%v`: 1e+06 style from exponent 6 up); `null` is a nil interface; a missing key (or
 * `undefined`) is Go's "no value".
 *
 * Deliberate differences from Go (all stricter, none changes the output of a template that
 * renders correctly in Istio):
 * - printing "no value" is an error naming the variable (`.tracing_zipkin is not provided`)
 *   where Go prints `<no value>`; `js` of no value / a list / a map is likewise an error;
 * - printing a list or map is an error (Go prints `map[a:1]`); use `toJSON`;
 * - a field with arguments (a Go method call), a non-function pipeline stage, and wrong
 *   argument counts are rejected at parse time rather than at execution.
 */
import { AgentError } from '../errors.js';

/** A parsed template; render it as often as needed. */
export interface Template {
  readonly name: string;
  /** Executes the template on `data` (the template's `.` and `$`). Pure. */
  render(data: unknown): string;
}

export const SUPPORTED_FUNCTIONS = ['and', 'or', 'not', 'eq', 'ne', 'js', 'toJSON', 'toJson'] as const;
type FuncName = (typeof SUPPORTED_FUNCTIONS)[number];

const SUPPORTED_HINT =
  'supported: if, else if, else, range, end, {{/* comments */}}, {{- -}} trimming, ' +
  `variables declared by range; functions ${SUPPORTED_FUNCTIONS.join(', ')}`;

/** Minimum and maximum argument counts (max -1 = variadic). */
const ARITY: Record<FuncName, [number, number]> = {
  and: [1, -1],
  or: [1, -1],
  not: [1, 1],
  eq: [2, -1],
  ne: [2, 2],
  js: [0, -1],
  toJSON: [1, 1],
  toJson: [1, 1],
};

export function parseTemplate(text: string, name: string): Template {
  const lines = new LineIndex(text);
  const items = new Lexer(text).run();
  const root = new Parser(items, name, lines).parse();
  return new ParsedTemplate(name, root, lines);
}

// ---------------------------------------------------------------------------------------------
// Errors and positions

class LineIndex {
  private readonly newlines: number[] = [];
  constructor(text: string) {
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) this.newlines.push(i);
  }
  /** 1-based line of the character at `pos`. */
  lineOf(pos: number): number {
    let lo = 0;
    let hi = this.newlines.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.newlines[mid] as number) < pos) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  }
}

function templateError(name: string, line: number, message: string): AgentError {
  return new AgentError('BOOTSTRAP_TEMPLATE_INVALID', `template ${JSON.stringify(name)} line ${line}: ${message}`);
}

// ---------------------------------------------------------------------------------------------
// Lexer: a port of Go's text/template/parse/lex.go state machine (default delimiters).

type Keyword = 'block' | 'break' | 'continue' | 'define' | 'dot' | 'else' | 'end' | 'if' | 'nil' | 'range' | 'template' | 'with';
type ItemType =
  | 'error'
  | 'bool'
  | 'char'
  | 'charConstant'
  | 'complex'
  | 'assign'
  | 'declare'
  | 'eof'
  | 'field'
  | 'identifier'
  | 'leftDelim'
  | 'leftParen'
  | 'number'
  | 'pipe'
  | 'rawString'
  | 'rightDelim'
  | 'rightParen'
  | 'space'
  | 'string'
  | 'text'
  | 'variable'
  | Keyword;

interface Item {
  type: ItemType;
  pos: number;
  val: string;
}

const KEYWORDS: ReadonlyMap<string, Keyword> = new Map<string, Keyword>([
  ['block', 'block'],
  ['break', 'break'],
  ['continue', 'continue'],
  ['define', 'define'],
  ['else', 'else'],
  ['end', 'end'],
  ['if', 'if'],
  ['nil', 'nil'],
  ['range', 'range'],
  ['template', 'template'],
  ['with', 'with'],
]);
const UNSUPPORTED_KEYWORDS: ReadonlySet<ItemType> = new Set<ItemType>(['block', 'break', 'continue', 'define', 'template', 'with']);

const EOF = -1;
const LEFT_DELIM = '{{';
const RIGHT_DELIM = '}}';
type StateFn = (l: Lexer) => StateFn | null;

function isSpace(r: number): boolean {
  return r === 0x20 || r === 0x09 || r === 0x0d || r === 0x0a;
}
// ASCII is decided without the Unicode property classes: matching those loads ICU's property
// tables (~130 KiB resident for good, measured) and every built-in template is ASCII.
// (V8 parses a regex literal when it is evaluated, so the class is built on first use.)
let nonAsciiAlnum: RegExp | undefined;
function isAlphaNumeric(r: number): boolean {
  if (r < 0x80) return r === 0x5f || (r >= 0x30 && r <= 0x39) || ((r | 0x20) >= 0x61 && (r | 0x20) <= 0x7a);
  nonAsciiAlnum ??= new RegExp('^[\\p{L}\\p{Nd}]$', 'u');
  return nonAsciiAlnum.test(String.fromCodePoint(r));
}
function isSpaceAt(s: string, i: number): boolean {
  return i < s.length && isSpace(s.charCodeAt(i));
}
function hasLeftTrimMarker(s: string, i: number): boolean {
  return s[i] === '-' && isSpaceAt(s, i + 1);
}
function hasRightTrimMarker(s: string, i: number): boolean {
  return isSpaceAt(s, i) && s[i + 1] === '-';
}
function leadingSpaceLength(s: string, from: number): number {
  let i = from;
  while (isSpaceAt(s, i)) i++;
  return i - from;
}
function trailingSpaceLength(s: string, from: number, to: number): number {
  let i = to;
  while (i > from && isSpace(s.charCodeAt(i - 1))) i--;
  return to - i;
}
/** Go's `%#U`. */
function fmtRune(r: number): string {
  if (r === EOF) return 'EOF';
  const hex = `U+${r.toString(16).toUpperCase().padStart(4, '0')}`;
  return /^\P{C}$/u.test(String.fromCodePoint(r)) ? `${hex} '${String.fromCodePoint(r)}'` : hex;
}

class Lexer {
  private readonly items: Item[] = [];
  pos = 0;
  start = 0;
  private width = 0;
  parenDepth = 0;

  constructor(readonly input: string) {}

  run(): Item[] {
    let state: StateFn | null = lexText;
    while (state) state = state(this);
    return this.items;
  }

  next(): number {
    if (this.pos >= this.input.length) {
      this.width = 0;
      return EOF;
    }
    const r = this.input.codePointAt(this.pos) as number;
    this.width = r > 0xffff ? 2 : 1;
    this.pos += this.width;
    return r;
  }

  peek(): number {
    const r = this.next();
    this.backup();
    return r;
  }

  backup(): void {
    this.pos -= this.width;
  }

  emit(type: ItemType): void {
    this.items.push({ type, pos: this.start, val: this.input.slice(this.start, this.pos) });
    this.start = this.pos;
  }

  ignore(): void {
    this.start = this.pos;
  }

  accept(valid: string): boolean {
    const r = this.next();
    if (r !== EOF && valid.includes(String.fromCodePoint(r))) return true;
    this.backup();
    return false;
  }

  acceptRun(valid: string): void {
    while (this.accept(valid));
  }

  errorf(message: string): null {
    this.items.push({ type: 'error', pos: this.start, val: message });
    return null;
  }

  /** [at a right delimiter, with a trim marker before it]. */
  atRightDelim(): [boolean, boolean] {
    if (hasRightTrimMarker(this.input, this.pos) && this.input.startsWith(RIGHT_DELIM, this.pos + 2)) return [true, true];
    if (this.input.startsWith(RIGHT_DELIM, this.pos)) return [true, false];
    return [false, false];
  }

  atTerminator(): boolean {
    const r = this.peek();
    if (isSpace(r)) return true;
    switch (r) {
      case EOF:
      case 0x2e: // .
      case 0x2c: // ,
      case 0x7c: // |
      case 0x3a: // :
      case 0x29: // )
      case 0x28: // (
        return true;
    }
    return this.input.startsWith(RIGHT_DELIM, this.pos);
  }

  scanNumber(): boolean {
    this.accept('+-');
    let digits = '0123456789_';
    if (this.accept('0')) {
      if (this.accept('xX')) digits = '0123456789abcdefABCDEF_';
      else if (this.accept('oO')) digits = '01234567_';
      else if (this.accept('bB')) digits = '01_';
    }
    this.acceptRun(digits);
    if (this.accept('.')) this.acceptRun(digits);
    if (digits.length === 10 + 1 && this.accept('eE')) {
      this.accept('+-');
      this.acceptRun('0123456789_');
    }
    if (digits.length === 16 + 6 + 1 && this.accept('pP')) {
      this.accept('+-');
      this.acceptRun('0123456789_');
    }
    this.accept('i');
    if (isAlphaNumeric(this.peek())) {
      this.next();
      return false;
    }
    return true;
  }
}

function lexText(l: Lexer): StateFn | null {
  const x = l.input.indexOf(LEFT_DELIM, l.pos);
  if (x >= 0) {
    l.pos = x;
    const trim = hasLeftTrimMarker(l.input, x + LEFT_DELIM.length) ? trailingSpaceLength(l.input, l.start, l.pos) : 0;
    l.pos -= trim;
    if (l.pos > l.start) l.emit('text');
    l.pos += trim;
    l.ignore();
    return lexLeftDelim;
  }
  l.pos = l.input.length;
  if (l.pos > l.start) l.emit('text');
  l.emit('eof');
  return null;
}

function lexLeftDelim(l: Lexer): StateFn | null {
  l.pos += LEFT_DELIM.length;
  const afterMarker = hasLeftTrimMarker(l.input, l.pos) ? 2 : 0;
  if (l.input.startsWith('/*', l.pos + afterMarker)) {
    l.pos += afterMarker;
    l.ignore();
    return lexComment;
  }
  l.emit('leftDelim');
  l.pos += afterMarker;
  l.ignore();
  l.parenDepth = 0;
  return lexInsideAction;
}

function lexComment(l: Lexer): StateFn | null {
  l.pos += 2;
  const i = l.input.indexOf('*/', l.pos);
  if (i < 0) return l.errorf('unclosed comment');
  l.pos = i + 2;
  const [delim, trim] = l.atRightDelim();
  if (!delim) return l.errorf('comment ends before closing delimiter');
  if (trim) l.pos += 2;
  l.pos += RIGHT_DELIM.length;
  if (trim) l.pos += leadingSpaceLength(l.input, l.pos);
  l.ignore();
  return lexText;
}

function lexRightDelim(l: Lexer): StateFn | null {
  const trim = hasRightTrimMarker(l.input, l.pos);
  if (trim) {
    l.pos += 2;
    l.ignore();
  }
  l.pos += RIGHT_DELIM.length;
  l.emit('rightDelim');
  if (trim) {
    l.pos += leadingSpaceLength(l.input, l.pos);
    l.ignore();
  }
  return lexText;
}

function lexInsideAction(l: Lexer): StateFn | null {
  const [delim] = l.atRightDelim();
  if (delim) {
    if (l.parenDepth === 0) return lexRightDelim;
    return l.errorf('unclosed left paren');
  }
  const r = l.next();
  if (r === EOF) return l.errorf('unclosed action');
  if (isSpace(r)) {
    l.backup(); // keep the space in case this is " -}}"
    return lexSpace;
  }
  switch (r) {
    case 0x3d: // =
      l.emit('assign');
      return lexInsideAction;
    case 0x3a: // :
      if (l.next() !== 0x3d) return l.errorf('expected :=');
      l.emit('declare');
      return lexInsideAction;
    case 0x7c: // |
      l.emit('pipe');
      return lexInsideAction;
    case 0x22: // "
      return lexQuote;
    case 0x60: // `
      return lexRawQuote;
    case 0x24: // $
      return lexVariable;
    case 0x27: // '
      return lexChar;
    case 0x2e: {
      // '.': a field unless a digit follows (then a number like .5)
      const c = l.input.charCodeAt(l.pos);
      if (l.pos < l.input.length && (c < 0x30 || c > 0x39)) return lexField;
      l.backup();
      return lexNumber;
    }
    case 0x28: // (
      l.emit('leftParen');
      l.parenDepth++;
      return lexInsideAction;
    case 0x29: // )
      l.emit('rightParen');
      l.parenDepth--;
      if (l.parenDepth < 0) return l.errorf(`unexpected right paren ${fmtRune(r)}`);
      return lexInsideAction;
  }
  if (r === 0x2b || r === 0x2d || (r >= 0x30 && r <= 0x39)) {
    l.backup();
    return lexNumber;
  }
  if (isAlphaNumeric(r)) {
    l.backup();
    return lexIdentifier;
  }
  if (r >= 0x20 && r < 0x7f) {
    l.emit('char');
    return lexInsideAction;
  }
  return l.errorf(`unrecognized character in action: ${fmtRune(r)}`);
}

function lexSpace(l: Lexer): StateFn | null {
  let numSpaces = 0;
  while (isSpace(l.peek())) {
    l.next();
    numSpaces++;
  }
  // " -}}": the last space belongs to the trim marker.
  if (hasRightTrimMarker(l.input, l.pos - 1) && l.input.startsWith(RIGHT_DELIM, l.pos + 1)) {
    l.pos -= 1;
    if (numSpaces === 1) return lexRightDelim;
  }
  l.emit('space');
  return lexInsideAction;
}

function lexIdentifier(l: Lexer): StateFn | null {
  for (;;) {
    const r = l.next();
    if (isAlphaNumeric(r)) continue;
    l.backup();
    if (!l.atTerminator()) return l.errorf(`bad character ${fmtRune(r)}`);
    const word = l.input.slice(l.start, l.pos);
    const kw = KEYWORDS.get(word);
    if (kw) l.emit(kw);
    else if (word === 'true' || word === 'false') l.emit('bool');
    else l.emit('identifier');
    return lexInsideAction;
  }
}

function lexField(l: Lexer): StateFn | null {
  return lexFieldOrVariable(l, 'field');
}

function lexVariable(l: Lexer): StateFn | null {
  if (l.atTerminator()) {
    l.emit('variable'); // "$"
    return lexInsideAction;
  }
  return lexFieldOrVariable(l, 'variable');
}

function lexFieldOrVariable(l: Lexer, type: 'field' | 'variable'): StateFn | null {
  if (l.atTerminator()) {
    l.emit(type === 'variable' ? 'variable' : 'dot');
    return lexInsideAction;
  }
  let r: number;
  for (;;) {
    r = l.next();
    if (!isAlphaNumeric(r)) {
      l.backup();
      break;
    }
  }
  if (!l.atTerminator()) return l.errorf(`bad character ${fmtRune(r)}`);
  l.emit(type);
  return lexInsideAction;
}

function lexChar(l: Lexer): StateFn | null {
  for (;;) {
    let r = l.next();
    if (r === 0x5c) {
      r = l.next();
      if (r !== EOF && r !== 0x0a) continue;
    }
    if (r === EOF || r === 0x0a) return l.errorf('unterminated character constant');
    if (r === 0x27) break;
  }
  l.emit('charConstant');
  return lexInsideAction;
}

function lexNumber(l: Lexer): StateFn | null {
  if (!l.scanNumber()) return l.errorf(`bad number syntax: ${JSON.stringify(l.input.slice(l.start, l.pos))}`);
  const sign = l.peek();
  if (sign === 0x2b || sign === 0x2d) {
    if (!l.scanNumber() || l.input[l.pos - 1] !== 'i') {
      return l.errorf(`bad number syntax: ${JSON.stringify(l.input.slice(l.start, l.pos))}`);
    }
    l.emit('complex');
  } else {
    l.emit('number');
  }
  return lexInsideAction;
}

function lexQuote(l: Lexer): StateFn | null {
  for (;;) {
    let r = l.next();
    if (r === 0x5c) {
      r = l.next();
      if (r !== EOF && r !== 0x0a) continue;
    }
    if (r === EOF || r === 0x0a) return l.errorf('unterminated quoted string');
    if (r === 0x22) break;
  }
  l.emit('string');
  return lexInsideAction;
}

function lexRawQuote(l: Lexer): StateFn | null {
  for (;;) {
    const r = l.next();
    if (r === EOF) return l.errorf('unterminated raw quoted string');
    if (r === 0x60) break;
  }
  l.emit('rawString');
  return lexInsideAction;
}

// ---------------------------------------------------------------------------------------------
// Literals (Go's strconv.Unquote and number syntax)

/** Go's strconv.Unquote for a "double-quoted" literal; undefined when invalid. */
function unquoteGo(lit: string): string | undefined {
  const body = lit.slice(1, -1);
  const bytes: number[] = [];
  const pushText = (s: string) => {
    for (const b of Buffer.from(s, 'utf8')) bytes.push(b);
  };
  for (let i = 0; i < body.length; ) {
    const ch = body[i] as string;
    if (ch !== '\\') {
      const cp = body.codePointAt(i) as number;
      const s = String.fromCodePoint(cp);
      pushText(s);
      i += s.length;
      continue;
    }
    const e = body[i + 1];
    i += 2;
    const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34 };
    if (e !== undefined && e in simple) {
      bytes.push(simple[e] as number);
      continue;
    }
    if (e === 'x') {
      const h = body.slice(i, i + 2);
      if (!/^[0-9a-fA-F]{2}$/.test(h)) return undefined;
      bytes.push(parseInt(h, 16));
      i += 2;
      continue;
    }
    if (e !== undefined && e >= '0' && e <= '7') {
      const o = body.slice(i - 1, i + 2);
      if (!/^[0-7]{3}$/.test(o) || parseInt(o, 8) > 255) return undefined;
      bytes.push(parseInt(o, 8));
      i += 2;
      continue;
    }
    if (e === 'u' || e === 'U') {
      const n = e === 'u' ? 4 : 8;
      const h = body.slice(i, i + n);
      if (h.length !== n || !/^[0-9a-fA-F]+$/.test(h)) return undefined;
      const cp = parseInt(h, 16);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
      pushText(String.fromCodePoint(cp));
      i += n;
      continue;
    }
    return undefined;
  }
  return Buffer.from(bytes).toString('utf8');
}

type NumberLiteral = { int: number | bigint } | { float: number };

const INT_SYNTAX = /^(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|0(?:_?[0-7])*|[1-9](?:_?[0-9])*)$/;
const FLOAT_SYNTAX = /^(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)(?:[eE][+-]?[0-9](?:_?[0-9])*)?$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** Go's NumberNode + idealConstant: an int (int64) or a float64 constant, or an error message. */
function parseNumber(text: string): NumberLiteral | string {
  const neg = text.startsWith('-');
  const unsigned = text.replace(/^[+-]/, '');
  if (INT_SYNTAX.test(unsigned)) {
    let digits = unsigned.replace(/_/g, '');
    if (/^0[0-7]+$/.test(digits)) digits = `0o${digits.slice(1)}`;
    let v = BigInt(digits);
    if (neg) v = -v;
    if (v < INT64_MIN || v > UINT64_MAX) return `integer overflow: ${JSON.stringify(text)}`;
    if (v > INT64_MAX) return `${text} overflows int`;
    return { int: v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v };
  }
  if (FLOAT_SYNTAX.test(unsigned)) {
    if (!/[.eE]/.test(unsigned)) return `integer overflow: ${JSON.stringify(text)}`; // e.g. "089", as Go
    const f = Number(unsigned.replace(/_/g, ''));
    return { float: neg ? -f : f };
  }
  return `illegal number syntax: ${JSON.stringify(text)}`;
}

// ---------------------------------------------------------------------------------------------
// AST

type Arg =
  | { kind: 'field'; pos: number; idents: string[] }
  | { kind: 'variable'; pos: number; name: string; idents: string[] }
  | { kind: 'dot'; pos: number }
  | { kind: 'chain'; pos: number; node: Arg; idents: string[] }
  | { kind: 'func'; pos: number; name: FuncName }
  | { kind: 'string'; pos: number; value: string; text: string }
  | { kind: 'number'; pos: number; value: unknown; text: string }
  | { kind: 'bool'; pos: number; value: boolean }
  | { kind: 'pipe'; pos: number; pipe: Pipe };

interface Command {
  pos: number;
  args: Arg[];
}

interface Pipe {
  pos: number;
  decl: string[];
  cmds: Command[];
}

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pos: number; pipe: Pipe }
  | { kind: 'if'; pos: number; pipe: Pipe; list: Node[]; elseList: Node[] | undefined }
  | { kind: 'range'; pos: number; pipe: Pipe; list: Node[]; elseList: Node[] | undefined };

/** Markers returned by `{{end}}` / `{{else}}` while parsing a list. */
type Marker = { kind: 'end'; item: Item } | { kind: 'else'; item: Item; elseIf: boolean };

function argString(a: Arg): string {
  switch (a.kind) {
    case 'field':
      return `.${a.idents.join('.')}`;
    case 'variable':
      return [a.name, ...a.idents].join('.');
    case 'dot':
      return '.';
    case 'chain':
      return `${argString(a.node)}.${a.idents.join('.')}`;
    case 'func':
      return a.name;
    case 'string':
    case 'number':
      return a.text;
    case 'bool':
      return String(a.value);
    case 'pipe':
      return `(${pipeString(a.pipe)})`;
  }
}

function pipeString(p: Pipe): string {
  const decl = p.decl.length ? `${p.decl.join(', ')} := ` : '';
  return decl + p.cmds.map((c) => c.args.map(argString).join(' ')).join(' | ');
}

// ---------------------------------------------------------------------------------------------
// Parser: Go's parse.go recursive descent, plus the subset checks.

const EOF_ITEM: Item = { type: 'eof', pos: 0, val: '' };

function itemString(i: Item): string {
  switch (i.type) {
    case 'eof':
      return 'EOF';
    case 'error':
      return i.val;
    case 'leftDelim':
    case 'rightDelim':
    case 'leftParen':
    case 'rightParen':
    case 'pipe':
    case 'char':
    case 'space':
      return JSON.stringify(i.val);
  }
  if (KEYWORDS.has(i.val) || i.type === 'dot') return `<${i.val}>`;
  return i.val.length > 10 ? `${JSON.stringify(i.val.slice(0, 10))}...` : JSON.stringify(i.val);
}

class Parser {
  private i = 0;
  private readonly vars: string[] = ['$'];

  constructor(
    private readonly items: Item[],
    private readonly name: string,
    private readonly lines: LineIndex,
  ) {}

  parse(): Node[] {
    const list: Node[] = [];
    while (this.peek().type !== 'eof') {
      const n = this.textOrAction();
      if (n.kind === 'end' || n.kind === 'else') this.errorf(n.item, `unexpected {{${n.kind}}}`);
      list.push(n);
    }
    return list;
  }

  // --- token access -------------------------------------------------------------------------

  private next(): Item {
    const it = this.items[this.i++] ?? EOF_ITEM;
    if (it.type === 'error') this.errorf(it, it.val);
    return it;
  }

  private backup(): void {
    this.i--;
  }

  private peek(): Item {
    const it = this.next();
    this.backup();
    return it;
  }

  private nextNonSpace(): Item {
    let it: Item;
    do it = this.next();
    while (it.type === 'space');
    return it;
  }

  private peekNonSpace(): Item {
    const it = this.nextNonSpace();
    this.backup();
    return it;
  }

  private errorf(at: Item | number, message: string): never {
    const pos = typeof at === 'number' ? at : at.pos;
    throw templateError(this.name, this.lines.lineOf(pos), message);
  }

  private unsupported(at: Item | number, what: string): never {
    this.errorf(at, `${what} is not supported (${SUPPORTED_HINT})`);
  }

  private unexpected(token: Item, context: string): never {
    this.errorf(token, `unexpected ${itemString(token)} in ${context}`);
  }

  private expect(type: ItemType, context: string): Item {
    const token = this.nextNonSpace();
    if (token.type !== type) this.unexpected(token, context);
    return token;
  }

  // --- structure ----------------------------------------------------------------------------

  private itemList(open: Item): [Node[], Marker] {
    const list: Node[] = [];
    while (this.peekNonSpace().type !== 'eof') {
      const n = this.textOrAction();
      if (n.kind === 'end' || n.kind === 'else') return [list, n];
      list.push(n);
    }
    this.errorf(this.items[this.items.length - 1] ?? EOF_ITEM, `unexpected EOF: {{${open.val}}} at line ${this.lines.lineOf(open.pos)} has no {{end}}`);
  }

  private textOrAction(): Node | Marker {
    const token = this.nextNonSpace();
    if (token.type === 'text') return { kind: 'text', text: token.val };
    if (token.type === 'leftDelim') return this.action();
    this.unexpected(token, 'input');
  }

  private action(): Node | Marker {
    const token = this.nextNonSpace();
    if (UNSUPPORTED_KEYWORDS.has(token.type)) this.unsupported(token, JSON.stringify(token.val));
    switch (token.type) {
      case 'else':
        return this.elseControl();
      case 'end':
        return { kind: 'end', item: this.expect('rightDelim', 'end') };
      case 'if':
        return { kind: 'if', ...this.parseControl(true, token) };
      case 'range':
        return { kind: 'range', ...this.parseControl(false, token) };
    }
    this.backup();
    const pos = this.peek().pos;
    return { kind: 'action', pos, pipe: this.pipeline('command', 'rightDelim') };
  }

  private elseControl(): Marker {
    const peek = this.peekNonSpace();
    if (peek.type === 'if') return { kind: 'else', item: peek, elseIf: true }; // "if" stays pending
    if (UNSUPPORTED_KEYWORDS.has(peek.type)) this.unsupported(peek, JSON.stringify(`else ${peek.val}`));
    return { kind: 'else', item: this.expect('rightDelim', 'else'), elseIf: false };
  }

  private parseControl(allowElseIf: boolean, open: Item): { pos: number; pipe: Pipe; list: Node[]; elseList: Node[] | undefined } {
    const mark = this.vars.length;
    const context = open.val;
    const pipe = this.pipeline(context, 'rightDelim');
    const [list, next] = this.itemList(open);
    let elseList: Node[] | undefined;
    if (next.kind === 'else') {
      if (next.elseIf) {
        const ifToken = this.next();
        // Go: "{{else if}}" only chains ifs; in a range the pending "if" is unexpected.
        if (!allowElseIf) this.unexpected(ifToken, 'input');
        // {{if a}}x{{else if b}}y{{end}} is {{if a}}x{{else}}{{if b}}y{{end}}{{end}}: one {{end}}.
        elseList = [{ kind: 'if', ...this.parseControl(true, ifToken) }];
      } else {
        const [l, end] = this.itemList(open);
        if (end.kind !== 'end') this.errorf(end.item, 'expected end; found {{else}}');
        elseList = l;
      }
    }
    this.vars.length = mark;
    return { pos: open.pos, pipe, list, elseList };
  }

  private pipeline(context: string, end: 'rightDelim' | 'rightParen'): Pipe {
    const pipe: Pipe = { pos: this.peekNonSpace().pos, decl: [], cmds: [] };
    // Declarations: only `range $v :=` and `range $i, $v :=` are in the subset.
    for (;;) {
      const v = this.peekNonSpace();
      if (v.type !== 'variable') break;
      const vIndex = this.i;
      this.next();
      const next = this.peekNonSpace();
      if (next.type === 'assign' || next.type === 'declare') {
        if (next.type === 'assign') this.unsupported(v, `variable assignment "${v.val} ="`);
        if (context !== 'range') this.unsupported(v, `variable declaration "${v.val} :=" outside range`);
        this.nextNonSpace();
        pipe.decl.push(v.val);
        this.vars.push(v.val);
        break;
      }
      if (next.type === 'char' && next.val === ',') {
        this.nextNonSpace();
        pipe.decl.push(v.val);
        this.vars.push(v.val);
        if (context === 'range' && pipe.decl.length < 2) {
          const t = this.peekNonSpace().type;
          if (t === 'variable' || t === 'rightDelim' || t === 'rightParen') continue;
          this.errorf(next, 'range can only initialize variables');
        }
        this.errorf(next, `too many declarations in ${context}`);
      }
      this.i = vIndex; // not a declaration: the variable is an operand
      break;
    }
    for (;;) {
      const token = this.nextNonSpace();
      if (token.type === end) {
        this.checkPipeline(pipe, context, token);
        return pipe;
      }
      switch (token.type) {
        case 'bool':
        case 'charConstant':
        case 'complex':
        case 'dot':
        case 'field':
        case 'identifier':
        case 'number':
        case 'nil':
        case 'rawString':
        case 'string':
        case 'variable':
        case 'leftParen':
          this.backup();
          pipe.cmds.push(this.command());
          break;
        default:
          this.unexpected(token, context);
      }
    }
  }

  private checkPipeline(pipe: Pipe, context: string, endToken: Item): void {
    if (pipe.cmds.length === 0) this.errorf(endToken, `missing value for ${context}`);
    pipe.cmds.forEach((cmd, i) => {
      const first = cmd.args[0] as Arg;
      if (i > 0 && first.kind !== 'func') {
        if (first.kind === 'bool' || first.kind === 'dot' || first.kind === 'number' || first.kind === 'string') {
          this.errorf(cmd.pos, `non executable command in pipeline stage ${i + 1}`);
        }
        this.unsupported(cmd.pos, `piping into ${argString(first)} (pipeline stage ${i + 1} must be a function)`);
      }
      if (first.kind !== 'func') {
        if (cmd.args.length > 1) {
          this.errorf(cmd.pos, `${argString(first)} is not a function and cannot take arguments (method calls are not supported; ${SUPPORTED_HINT})`);
        }
        return;
      }
      const got = cmd.args.length - 1 + (i > 0 ? 1 : 0);
      const [min, max] = ARITY[first.name];
      if (got < min || (max >= 0 && got > max)) {
        const want = max === min ? `${min}` : `at least ${min}`;
        this.errorf(cmd.pos, `wrong number of args for ${first.name}: want ${want} got ${got}`);
      }
    });
  }

  private command(): Command {
    const cmd: Command = { pos: this.peekNonSpace().pos, args: [] };
    for (;;) {
      this.peekNonSpace();
      const operand = this.operand();
      if (operand) cmd.args.push(operand);
      const token = this.next();
      if (token.type === 'space') continue;
      if (token.type === 'rightDelim' || token.type === 'rightParen') this.backup();
      else if (token.type !== 'pipe') this.unexpected(token, 'operand');
      break;
    }
    if (cmd.args.length === 0) this.errorf(cmd.pos, 'empty command');
    return cmd;
  }

  private operand(): Arg | undefined {
    const node = this.term();
    if (!node) return undefined;
    if (this.peek().type !== 'field') return node;
    const idents: string[] = [];
    while (this.peek().type === 'field') idents.push(this.next().val.slice(1));
    switch (node.kind) {
      case 'field':
      case 'variable':
      case 'chain':
        return { ...node, idents: [...node.idents, ...idents] };
      case 'bool':
      case 'string':
      case 'number':
      case 'dot':
        this.errorf(node.pos, `unexpected . after term ${JSON.stringify(argString(node))}`);
      default:
        return { kind: 'chain', pos: node.pos, node, idents };
    }
  }

  private term(): Arg | undefined {
    const token = this.nextNonSpace();
    switch (token.type) {
      case 'identifier':
        if (!(SUPPORTED_FUNCTIONS as readonly string[]).includes(token.val)) this.unsupported(token, `function ${JSON.stringify(token.val)}`);
        return { kind: 'func', pos: token.pos, name: token.val as FuncName };
      case 'dot':
        return { kind: 'dot', pos: token.pos };
      case 'nil':
        this.unsupported(token, '"nil"');
      case 'variable':
        if (!this.vars.includes(token.val)) this.errorf(token, `undefined variable ${JSON.stringify(token.val)}`);
        return { kind: 'variable', pos: token.pos, name: token.val, idents: [] };
      case 'field':
        return { kind: 'field', pos: token.pos, idents: [token.val.slice(1)] };
      case 'bool':
        return { kind: 'bool', pos: token.pos, value: token.val === 'true' };
      case 'charConstant':
        this.unsupported(token, `character constant ${token.val}`);
      case 'complex':
        this.unsupported(token, `complex number ${token.val}`);
      case 'number': {
        if (token.val.endsWith('i')) this.unsupported(token, `complex number ${token.val}`);
        const n = parseNumber(token.val);
        if (typeof n === 'string') this.errorf(token, n);
        const value = 'int' in n ? n.int : new GoFloat(n.float);
        return { kind: 'number', pos: token.pos, value, text: token.val };
      }
      case 'leftParen':
        return { kind: 'pipe', pos: token.pos, pipe: this.pipeline('parenthesized pipeline', 'rightParen') };
      case 'string': {
        const s = unquoteGo(token.val);
        if (s === undefined) this.errorf(token, `invalid syntax in string literal ${token.val}`);
        return { kind: 'string', pos: token.pos, value: s, text: token.val };
      }
      case 'rawString':
        return { kind: 'string', pos: token.pos, value: token.val.slice(1, -1).replace(/\r/g, ''), text: token.val };
    }
    this.backup();
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Values

/** Go's invalid reflect.Value: a missing map key, or a nil interface at the end of a pipeline. */
const MISSING: unique symbol = Symbol('no value');
/** "No final value" for the first command of a pipeline. */
const NO_FINAL: unique symbol = Symbol('no final');

/** A float64 constant written in the template (`1.0`, `1e6`), printed like Go's float. */
class GoFloat {
  constructor(readonly value: number) {}
}

function isMap(v: unknown): v is Record<string, unknown> | Map<unknown, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof GoFloat);
}

/** The entries of a map in Go's iteration order for `range` (sorted keys). */
function sortedEntries(m: Record<string, unknown> | Map<unknown, unknown>): [unknown, unknown][] {
  const entries: [unknown, unknown][] = m instanceof Map ? [...m.entries()] : Object.entries(m).filter(([, v]) => v !== undefined);
  return entries.sort(([a], [b]) => compareKeys(a, b));
}

function compareKeys(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return compareCodePoints(String(a), String(b));
}

/** UTF-8 byte order (= code point order), Go's string order. */
function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const cx = (x.value as string).codePointAt(0) as number;
    const cy = (y.value as string).codePointAt(0) as number;
    if (cx !== cy) return cx - cy;
  }
}

function norm(v: unknown): unknown {
  return v === null || v === undefined ? MISSING : v;
}

/** Go's isTrue: zero values and empty containers are false. */
function truth(v: unknown): boolean {
  if (v === MISSING || v === null || v === undefined) return false;
  if (v instanceof GoFloat) return v.value !== 0;
  switch (typeof v) {
    case 'string':
      return v.length > 0;
    case 'boolean':
      return v;
    case 'number':
      return v !== 0;
    case 'bigint':
      return v !== 0n;
  }
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof Map) return v.size > 0;
  if (typeof v === 'object') return Object.values(v).some((x) => x !== undefined);
  return true;
}

type Kind = 'bool' | 'int' | 'float' | 'string' | 'invalid' | 'other';

function basicKind(v: unknown): Kind {
  if (v === MISSING) return 'invalid';
  if (v instanceof GoFloat) return 'float';
  switch (typeof v) {
    case 'boolean':
      return 'bool';
    case 'string':
      return 'string';
    case 'bigint':
      return 'int';
    case 'number':
      return Number.isSafeInteger(v) ? 'int' : 'float';
  }
  return 'other';
}

function goTypeName(v: unknown): string {
  if (v === null) return 'nil';
  const k = basicKind(v);
  if (k === 'float') return 'float64';
  if (k !== 'other' && k !== 'invalid') return k;
  if (Array.isArray(v)) return '[]interface {}';
  if (isMap(v)) return 'map[string]interface {}';
  return typeof v;
}

/** Go's fmt `%v` of a float64. */
export function formatGoFloat(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return '+Inf';
  if (x === -Infinity) return '-Inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const sign = x < 0 ? '-' : '';
  const [mant = '', expText = '0'] = Math.abs(x).toExponential().split('e');
  const exp = Number(expText);
  const digits = mant.replace('.', '');
  // strconv 'g' with the shortest digits: %e when the exponent is < -4 or >= 6 (Go's eprec for shortest).
  if (exp < -4 || exp >= 6) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, '0');
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${e}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}${frac ? `.${frac}` : ''}`;
}

/** The text Go's fmt.Print writes for a printable value; undefined when not printable here. */
function printable(v: unknown): string | undefined {
  if (v instanceof GoFloat) return formatGoFloat(v.value);
  switch (typeof v) {
    case 'string':
      return v;
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      return v.toString();
    case 'number':
      return Number.isSafeInteger(v) ? String(v) : formatGoFloat(v);
  }
  return undefined;
}

// --- JSON (Go's encoding/json.Marshal) ---------------------------------------------------------

class JsonUnsupported extends Error {}

function goJsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    switch (c) {
      case 0x22:
        out += '\\"';
        continue;
      case 0x5c:
        out += '\\\\';
        continue;
      case 0x08:
        out += '\\b';
        continue;
      case 0x0c:
        out += '\\f';
        continue;
      case 0x0a:
        out += '\\n';
        continue;
      case 0x0d:
        out += '\\r';
        continue;
      case 0x09:
        out += '\\t';
        continue;
      case 0x3c: // HTML-safe escaping is on in json.Marshal
      case 0x3e:
      case 0x26:
      case 0x2028:
      case 0x2029:
        out += `\\u${c.toString(16).padStart(4, '0')}`;
        continue;
    }
    if (c < 0x20) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else if (c >= 0xd800 && c <= 0xdfff) out += '\\ufffd'; // lone surrogate: invalid UTF-8 in Go
    else out += ch;
  }
  return `${out}"`;
}

function goJsonNumber(n: number): string {
  if (!Number.isFinite(n)) throw new JsonUnsupported(`json: unsupported value: ${formatGoFloat(n)}`);
  // Go's float encoding (shortest, exponent outside [1e-6, 1e21)) is ECMAScript's Number#toString.
  return Object.is(n, -0) ? '-0' : String(n);
}

function goJson(v: unknown): string {
  if (v === MISSING || v === null || v === undefined) return 'null';
  if (v instanceof GoFloat) return goJsonNumber(v.value);
  switch (typeof v) {
    case 'string':
      return goJsonString(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      return goJsonNumber(v);
    case 'bigint':
      return v.toString();
    case 'object': {
      if (Array.isArray(v)) return `[${v.map(goJson).join(',')}]`;
      const m = v as Record<string, unknown> | Map<unknown, unknown>;
      return `{${sortedEntries(m)
        .map(([k, x]) => `${goJsonString(String(k))}:${goJson(x)}`)
        .join(',')}}`;
    }
  }
  throw new JsonUnsupported(`json: unsupported type: ${typeof v}`);
}

// ---------------------------------------------------------------------------------------------
// Execution

class ParsedTemplate implements Template {
  constructor(
    readonly name: string,
    private readonly root: Node[],
    private readonly lines: LineIndex,
  ) {}

  render(data: unknown): string {
    return new Execution(this.name, this.lines, data).run(this.root);
  }
}

interface Variable {
  name: string;
  value: unknown;
}

class Execution {
  private readonly out: string[] = [];
  private readonly vars: Variable[];

  constructor(
    private readonly name: string,
    private readonly lines: LineIndex,
    data: unknown,
  ) {
    this.vars = [{ name: '$', value: data }];
  }

  run(root: Node[]): string {
    this.walk(this.vars[0]?.value, root);
    return this.out.join('');
  }

  private fail(pos: number, message: string): never {
    throw templateError(this.name, this.lines.lineOf(pos), message);
  }

  private walk(dot: unknown, nodes: Node[]): void {
    for (const node of nodes) {
      switch (node.kind) {
        case 'text':
          this.out.push(node.text);
          break;
        case 'action':
          this.print(node.pipe, this.evalPipeline(dot, node.pipe));
          break;
        case 'if': {
          const mark = this.vars.length;
          const cond = truth(this.evalPipeline(dot, node.pipe));
          if (cond) this.walk(dot, node.list);
          else if (node.elseList) this.walk(dot, node.elseList);
          this.vars.length = mark;
          break;
        }
        case 'range':
          this.walkRange(dot, node);
          break;
      }
    }
  }

  private walkRange(dot: unknown, r: Extract<Node, { kind: 'range' }>): void {
    const outer = this.vars.length;
    const val = this.evalPipeline(dot, r.pipe); // pushes the declared variables
    const mark = this.vars.length;
    const one = (index: unknown, elem: unknown) => {
      if (r.pipe.decl.length > 0) (this.vars[mark - 1] as Variable).value = elem;
      if (r.pipe.decl.length > 1) (this.vars[mark - 2] as Variable).value = index;
      this.walk(elem, r.list);
      this.vars.length = mark;
    };
    let iterated = false;
    if (Array.isArray(val)) {
      val.forEach((elem, i) => one(i, elem));
      iterated = val.length > 0;
    } else if (isMap(val)) {
      const entries = sortedEntries(val);
      for (const [k, v] of entries) one(k, v);
      iterated = entries.length > 0;
    } else if (val !== MISSING) {
      this.fail(r.pos, `range can't iterate over ${pipeString(r.pipe)} (type ${goTypeName(val)})`);
    }
    if (!iterated && r.elseList) this.walk(dot, r.elseList);
    this.vars.length = outer;
  }

  private print(pipe: Pipe, v: unknown): void {
    const text = printable(v);
    if (text !== undefined) {
      this.out.push(text);
      return;
    }
    const what = pipeString(pipe);
    if (v === MISSING) {
      const simple = pipe.cmds.length === 1 && pipe.cmds[0]?.args.length === 1;
      this.fail(pipe.pos, simple ? `${what} is not provided` : `{{ ${what} }} has no value (something it uses is not provided)`);
    }
    this.fail(pipe.pos, `can't print ${what}: it is a ${goTypeName(v)} (use toJSON)`);
  }

  private evalPipeline(dot: unknown, pipe: Pipe): unknown {
    let value: unknown = NO_FINAL;
    for (const cmd of pipe.cmds) value = norm(this.evalCommand(dot, cmd, value));
    for (const name of pipe.decl) this.vars.push({ name, value });
    return value;
  }

  private evalCommand(dot: unknown, cmd: Command, final: unknown): unknown {
    const first = cmd.args[0] as Arg;
    if (first.kind === 'func') return this.call(dot, first, cmd.args.slice(1), final);
    return this.evalArg(dot, first);
  }

  private evalArg(dot: unknown, a: Arg): unknown {
    switch (a.kind) {
      case 'dot':
        return norm(dot);
      case 'field':
        return this.fieldChain(dot, a.idents, a);
      case 'variable':
        return this.fieldChain(this.lookup(a), a.idents, a);
      case 'chain':
        return this.fieldChain(this.evalArg(dot, a.node), a.idents, a);
      case 'pipe':
        return this.evalPipeline(dot, a.pipe);
      case 'func':
        return this.call(dot, a, [], NO_FINAL);
      case 'string':
      case 'number':
      case 'bool':
        return a.value;
    }
  }

  private lookup(a: Extract<Arg, { kind: 'variable' }>): unknown {
    for (let i = this.vars.length - 1; i >= 0; i--) {
      const v = this.vars[i] as Variable;
      if (v.name === a.name) return v.value;
    }
    this.fail(a.pos, `undefined variable: ${a.name}`);
  }

  /** Go's evalFieldChain on map data: a missing key is "no value", a nil receiver an error. */
  private fieldChain(receiver: unknown, idents: string[], node: Arg): unknown {
    let cur = receiver;
    for (const [i, ident] of idents.entries()) {
      if (cur === MISSING || cur === undefined) return MISSING;
      if (cur === null) this.fail(node.pos, `can't evaluate ${argString(node)}: nil pointer evaluating field ${ident} (element ${i + 1} of the chain)`);
      if (cur instanceof Map) cur = cur.get(ident);
      else if (isMap(cur)) cur = Object.hasOwn(cur, ident) ? (cur as Record<string, unknown>)[ident] : undefined;
      else this.fail(node.pos, `${argString(node)}: can't evaluate field ${ident} in type ${goTypeName(cur)}`);
    }
    return norm(cur);
  }

  private call(dot: unknown, fn: Extract<Arg, { kind: 'func' }>, args: Arg[], final: unknown): unknown {
    const name = fn.name;
    if (name === 'and' || name === 'or') {
      let v: unknown = MISSING;
      for (const a of args) {
        v = this.evalArg(dot, a);
        if (truth(v) === (name === 'or')) return v;
      }
      return final !== NO_FINAL ? final : v;
    }
    const vals = args.map((a) => this.evalArg(dot, a));
    if (final !== NO_FINAL) vals.push(final);
    const at = (i: number) => args[i]?.pos ?? fn.pos;
    switch (name) {
      case 'not':
        return !truth(vals[0]);
      case 'eq':
        return this.eq(fn, vals);
      case 'ne':
        return !this.eq(fn, vals);
      case 'js':
        return jsEscapeString(this.sprint(vals, args, at));
      case 'toJSON':
        if (vals[0] === MISSING) return '{}';
        try {
          return goJson(vals[0]);
        } catch (err) {
          if (err instanceof JsonUnsupported) return '{}';
          throw err;
        }
      case 'toJson':
        try {
          return goJson(vals[0]);
        } catch (err) {
          if (err instanceof JsonUnsupported) return '';
          throw err;
        }
    }
  }

  /** Go's eq: basic kinds compare by value; "no value" equals nothing but "no value". */
  private eq(fn: Extract<Arg, { kind: 'func' }>, vals: unknown[]): boolean {
    const [a, ...rest] = vals;
    const k1 = basicKind(a);
    for (const b of rest) {
      const k2 = basicKind(b);
      let equal = false;
      if (k1 !== k2) {
        if (a !== MISSING && b !== MISSING) this.fail(fn.pos, `error calling ${fn.name}: incompatible types for comparison`);
      } else if (k1 === 'other') {
        this.fail(fn.pos, `error calling ${fn.name}: non-comparable type ${goTypeName(a)}`);
      } else if (k1 === 'invalid') {
        equal = true;
      } else if (k1 === 'float') {
        equal = (a instanceof GoFloat ? a.value : a) === (b instanceof GoFloat ? b.value : b);
      } else if (k1 === 'int' && (typeof a === 'bigint' || typeof b === 'bigint')) {
        equal = BigInt(a as number | bigint) === BigInt(b as number | bigint);
      } else {
        equal = a === b;
      }
      if (equal) return true;
    }
    return false;
  }

  /** fmt.Sprint of the arguments (a lone string as is), refusing values Go would print oddly. */
  private sprint(vals: unknown[], args: Arg[], at: (i: number) => number): string {
    let out = '';
    vals.forEach((v, i) => {
      const text = printable(v);
      const what = args[i] ? argString(args[i] as Arg) : 'the piped value';
      if (text === undefined) {
        this.fail(at(i), v === MISSING ? `${what} is not provided` : `can't print ${what}: it is a ${goTypeName(v)} (use toJSON)`);
      }
      if (i > 0 && typeof v !== 'string' && typeof vals[i - 1] !== 'string') out += ' ';
      out += text;
    });
    return out;
  }
}

/** Go's template.JSEscapeString. */
export function jsEscapeString(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    switch (ch) {
      case '\\':
        out += '\\\\';
        continue;
      case "'":
        out += "\\'";
        continue;
      case '"':
        out += '\\"';
        continue;
      case '<':
        out += '\\u003C';
        continue;
      case '>':
        out += '\\u003E';
        continue;
      case '&':
        out += '\\u0026';
        continue;
      case '=':
        out += '\\u003D';
        continue;
    }
    if (c < 0x20) out += `\\u00${c.toString(16).toUpperCase().padStart(2, '0')}`;
    else if (c < 0x80 || /^[\p{L}\p{M}\p{N}\p{P}\p{S}\u0020]$/u.test(ch)) out += ch;
    else out += `\\u${c.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  return out;
}
