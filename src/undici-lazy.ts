/**
 * A stand-in for undici's `Agent` that loads undici (60–140 ms of module loading) on the first
 * request instead of at import time, so the agent's start-up path up to the Envoy spawn does
 * not pay for it. Supports what its users call: the promise forms of `request()` and
 * `destroy()`. `destroy()` before any request resolves at once (nothing was opened).
 */
import type { Agent as UndiciAgent, Dispatcher } from 'undici';

class LazyAgent {
  private real: Promise<UndiciAgent> | undefined;

  constructor(private readonly options?: UndiciAgent.Options) {}

  private agent(): Promise<UndiciAgent> {
    return (this.real ??= import('undici').then(({ Agent }) => new Agent(this.options)));
  }

  async request(options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> {
    return (await this.agent()).request(options);
  }

  async destroy(): Promise<void> {
    if (this.real) await (await this.real).destroy();
  }
}

/** Typed as undici's Agent for its users; only `request()` and `destroy()` (promise forms) exist. */
export const Agent = LazyAgent as unknown as typeof UndiciAgent;
