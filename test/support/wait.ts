/**
 * The one poll-until of the test suite: calls `fn` every `everyMs` until it returns a truthy
 * value (which it resolves with) or the deadline passes (then it rejects naming `what`, with the
 * last error `fn` threw, if any). `fn` may be async; a throw counts as "not yet". No fixed sleeps
 * stand in for a condition anywhere in the suite: wait for the condition with this.
 */
export async function waitUntil<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 10_000,
  everyMs = 10,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
