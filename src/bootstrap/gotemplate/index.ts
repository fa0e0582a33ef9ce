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
import { Lexer } from './lexer.js';
import { Parser } from './parser.js';
import { LineIndex } from './source.js';
import { ParsedTemplate, type Template } from './exec.js';

export type { Template } from './exec.js';
export { SUPPORTED_FUNCTIONS, jsEscapeString } from './funcs.js';

export function parseTemplate(text: string, name: string): Template {
  const lines = new LineIndex(text);
  const items = new Lexer(text).run();
  const root = new Parser(items, name, lines).parse();
  return new ParsedTemplate(name, root, lines);
}
