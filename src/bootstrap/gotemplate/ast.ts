/** The parse tree, and how its parts are named in error messages. */
import type { FuncName } from './funcs.js';
import type { Item } from './items.js';

export type Arg =
  | { kind: 'field'; pos: number; idents: string[] }
  | { kind: 'variable'; pos: number; name: string; idents: string[] }
  | { kind: 'dot'; pos: number }
  | { kind: 'chain'; pos: number; node: Arg; idents: string[] }
  | { kind: 'func'; pos: number; name: FuncName }
  | { kind: 'string'; pos: number; value: string; text: string }
  | { kind: 'number'; pos: number; value: unknown; text: string }
  | { kind: 'bool'; pos: number; value: boolean }
  | { kind: 'pipe'; pos: number; pipe: Pipe };

export interface Command {
  pos: number;
  args: Arg[];
}

export interface Pipe {
  pos: number;
  decl: string[];
  cmds: Command[];
}

export type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pos: number; pipe: Pipe }
  | { kind: 'if'; pos: number; pipe: Pipe; list: Node[]; elseList: Node[] | undefined }
  | { kind: 'range'; pos: number; pipe: Pipe; list: Node[]; elseList: Node[] | undefined };

/** Markers returned by `{{end}}` / `{{else}}` while parsing a list. */
export type Marker = { kind: 'end'; item: Item } | { kind: 'else'; item: Item; elseIf: boolean };

export function argString(a: Arg): string {
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

export function pipeString(p: Pipe): string {
  const decl = p.decl.length ? `${p.decl.join(', ')} := ` : '';
  return decl + p.cmds.map((c) => c.args.map(argString).join(' ')).join(' | ');
}
