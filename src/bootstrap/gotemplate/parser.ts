/** Parser: Go's parse.go recursive descent, plus the subset checks; literals as Go reads them. */
import { unquote } from '../../go/strconv.js';
import type { Arg, Command, Marker, Node, Pipe } from './ast.js';
import { argString } from './ast.js';
import { ARITY, type FuncName, SUPPORTED_FUNCTIONS, SUPPORTED_HINT } from './funcs.js';
import { EOF_ITEM, type Item, type ItemType, itemString, UNSUPPORTED_KEYWORDS } from './items.js';
import { type LineIndex, templateError } from './source.js';
import { GoFloat } from './values.js';

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

export class Parser {
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
        const s = unquote(token.val);
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

