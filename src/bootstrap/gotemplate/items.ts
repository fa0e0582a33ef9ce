/** The lexer's items (Go's text/template/parse item types) and their names in parse errors. */

export type Keyword = 'block' | 'break' | 'continue' | 'define' | 'dot' | 'else' | 'end' | 'if' | 'nil' | 'range' | 'template' | 'with';
export type ItemType =
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

export interface Item {
  type: ItemType;
  pos: number;
  val: string;
}

export const KEYWORDS: ReadonlyMap<string, Keyword> = new Map<string, Keyword>([
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
export const UNSUPPORTED_KEYWORDS: ReadonlySet<ItemType> = new Set<ItemType>(['block', 'break', 'continue', 'define', 'template', 'with']);

export const EOF_ITEM: Item = { type: 'eof', pos: 0, val: '' };

export function itemString(i: Item): string {
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
