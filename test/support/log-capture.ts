/**
 * The one log capture of the test suite: a real logger (the agent's pino wiring, JSON lines)
 * whose records are kept in memory, with pino's level numbers turned back into names.
 */
import { createLogger, type Logger } from '../../src/log.js';

export interface CapturedLog {
  log: Logger;
  /** Every record so far, in order (the array grows as the logger writes). */
  records: Array<{ level: string; msg: string; [k: string]: unknown }>;
  /** All records as `<level> <msg>`, one per line. */
  text(): string;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

export function captureLogger(level = 'debug'): CapturedLog {
  const records: CapturedLog['records'] = [];
  const log = createLogger({
    outputLevel: level,
    asJson: true,
    destination: {
      write: (line: string) => {
        const r = JSON.parse(line) as Record<string, unknown>;
        records.push({ ...r, level: LEVEL_NAMES[r.level as number] ?? String(r.level), msg: String(r.msg ?? '') });
      },
    },
  });
  return { log, records, text: () => records.map((r) => `${r.level} ${r.msg}`).join('\n') };
}
