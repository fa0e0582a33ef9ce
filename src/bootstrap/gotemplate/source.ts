/** Positions and the one error of the template engine: `template "<name>" line <n>: <what>`. */
import { AgentError } from '../../errors.js';

export class LineIndex {
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

export function templateError(name: string, line: number, message: string): AgentError {
  return new AgentError('BOOTSTRAP_TEMPLATE_INVALID', `template ${JSON.stringify(name)} line ${line}: ${message}`);
}
