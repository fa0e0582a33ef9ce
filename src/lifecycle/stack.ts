/**
 * The one ownership idiom (STYLE 5): an async disposable stack, shaped like the TC39
 * `AsyncDisposableStack` (which Node 20 lacks). Whatever is added is disposed in reverse order
 * by `disposeAsync()`; every disposer runs even when an earlier one fails. Failures are logged
 * as they happen and the disposal then rejects with one DisposeError chaining them (newest
 * first, like SuppressedError). Idempotent: a second `disposeAsync()` returns the first one's
 * promise; adding to a disposed stack disposes the newcomer at once and throws.
 * Ours everywhere, even where the runtime has one: the platform's stack neither logs each
 * failure nor takes a logger, and `withStack`'s error precedence differs from `await using`.
 */
import { DisposeError, describeError } from '../errors.js';

export interface StackLogger {
  warn(msg: string): void;
}

type Disposer = { what: string; fn: () => unknown };

export class AsyncDisposableStack implements AsyncDisposable {
  private readonly disposers: Disposer[] = [];
  private disposing: Promise<void> | undefined;

  /** `log` receives one line per failed disposer. */
  constructor(private readonly log?: StackLogger) {}

  get disposed(): boolean {
    return this.disposing !== undefined;
  }

  /** Adds an (async) disposable; returns it. `null`/`undefined` are accepted and ignored. */
  use<T extends AsyncDisposable | Disposable | null | undefined>(value: T, what?: string): T {
    if (value === null || value === undefined) return value;
    const v = value as Partial<AsyncDisposable & Disposable>;
    const method = v[Symbol.asyncDispose] ?? v[Symbol.dispose];
    if (typeof method !== 'function') throw new TypeError('AsyncDisposableStack.use: the value is not disposable');
    this.push({ what: what ?? value.constructor?.name ?? 'resource', fn: () => method.call(value) });
    return value;
  }

  /** Adds `value` with its own disposer (for components that only have `close()`); returns it. */
  adopt<T>(value: T, onDispose: (value: T) => unknown, what?: string): T {
    this.push({ what: what ?? (value as { constructor?: { name?: string } })?.constructor?.name ?? 'resource', fn: () => onDispose(value) });
    return value;
  }

  /** Adds a callback run at disposal. */
  defer(fn: () => unknown, what = 'deferred callback'): void {
    this.push({ what, fn });
  }

  disposeAsync(): Promise<void> {
    return (this.disposing ??= this.run());
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.disposeAsync();
  }

  private push(d: Disposer): void {
    if (this.disposed) {
      void Promise.resolve()
        .then(d.fn)
        .catch((err: unknown) => this.log?.warn(`disposing ${d.what} failed: ${describeError(err)}`));
      throw new ReferenceError(`AsyncDisposableStack: cannot add ${d.what} to a disposed stack (disposed it instead)`);
    }
    this.disposers.push(d);
  }

  private async run(): Promise<void> {
    let failure: DisposeError | undefined;
    for (let d = this.disposers.pop(); d !== undefined; d = this.disposers.pop()) {
      try {
        await d.fn();
      } catch (err) {
        this.log?.warn(`disposing ${d.what} failed: ${describeError(err)}`);
        failure = new DisposeError(err, failure, `disposing ${d.what} failed: ${describeError(err)}`);
      }
    }
    if (failure) throw failure;
  }
}

/**
 * Runs `body` with a fresh stack and disposes it afterwards, like `await using`, except that
 * the body's own failure wins: disposal failures after it are logged (by the stack) and dropped,
 * so a start-up error keeps its code and message. Disposal failures after a success reject.
 */
export async function withStack<T>(log: StackLogger | undefined, body: (stack: AsyncDisposableStack) => Promise<T>): Promise<T> {
  const stack = new AsyncDisposableStack(log);
  let result: T;
  try {
    result = await body(stack);
  } catch (err) {
    await stack.disposeAsync().catch(() => undefined);
    throw err;
  }
  await stack.disposeAsync();
  return result;
}
