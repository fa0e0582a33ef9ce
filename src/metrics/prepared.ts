/**
 * PURE: a source merged ahead of its turn (the application's body while Envoy's streams), and
 * the strict whole-body check built on it.
 */
import { ExpositionMerger, type MergerOptions, type PreparedSource } from './merge.js';

/**
 * Merges one source on its own while an earlier source is still streaming, so that its turn
 * costs only `ExpositionMerger.adopt` (used for the application's buffered body). Its output
 * holds slices of the chunks written, not copies.
 */
export class PreparedSourceBuilder {
  private readonly merger: ExpositionMerger;
  private readonly out: Buffer[] = [];
  private readonly validate: boolean;

  constructor(
    private readonly source: string,
    options: MergerOptions,
  ) {
    this.merger = new ExpositionMerger(options);
    this.validate = options.validate === true;
    this.merger.begin(source);
  }

  /**
   * Feeds a chunk; returns the first problem that makes the body not an exposition (with
   * `validate`): NUL bytes, or an invalid or over-long line. Feed no more after one.
   */
  write(chunk: Uint8Array): string | undefined {
    if (this.validate && Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).includes(0)) return 'body contains NUL bytes';
    for (const b of this.merger.write(chunk)) this.out.push(b);
    return this.merger.problem;
  }

  /** Ends the source; with `validate`, the problem of its last line (if any) is in `problem`. */
  end(): PreparedSource & { problem: string | undefined } {
    const end = this.merger.end();
    const problem = this.merger.problem;
    for (const b of end.out) this.out.push(b);
    return { source: this.source, out: this.out, stats: end.stats, claims: this.merger.takePendingClaims(), problem };
  }
}

/**
 * Checks a whole body as the application's is checked (a validating `PreparedSourceBuilder`):
 * undefined when it is an exposition, else the first problem (NUL bytes, an invalid or
 * over-long line, with its number).
 */
export function validateExposition(chunks: readonly Uint8Array[]): string | undefined {
  const builder = new PreparedSourceBuilder('check', { openMetrics: false, validate: true });
  for (const chunk of chunks) {
    const problem = builder.write(chunk);
    if (problem !== undefined) return problem;
  }
  return builder.end().problem;
}
