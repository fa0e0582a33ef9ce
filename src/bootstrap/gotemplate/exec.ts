/** Execution: Go's exec.go walk over the parse tree with map/slice data. */
import { type Arg, argString, type Command, type Node, type Pipe, pipeString } from './ast.js';
import { jsEscapeString } from './funcs.js';
import { type LineIndex, templateError } from './source.js';
import { basicKind, GoFloat, goJson, goTypeName, isMap, MISSING, NO_FINAL, norm, printable, sortedEntries, truth } from './values.js';

/** A parsed template; render it as often as needed. */
export interface Template {
  readonly name: string;
  /** Executes the template on `data` (the template's `.` and `$`). Pure. */
  render(data: unknown): string;
}

export class ParsedTemplate implements Template {
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
        return goJson(vals[0]) ?? '{}';
      case 'toJson':
        return goJson(vals[0]) ?? '';
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
