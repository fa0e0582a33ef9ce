import { describe, expect, test } from '@jest/globals';
import { AsyncDisposableStack, withStack } from '../../src/lifecycle/stack.js';
import { DisposeError } from '../../src/errors.js';

function recorder() {
  const lines: string[] = [];
  return { lines, log: { warn: (m: string) => void lines.push(m) } };
}

describe('AsyncDisposableStack', () => {
  test('disposes in reverse order of addition: use, adopt and defer alike, sync and async', async () => {
    const order: string[] = [];
    const stack = new AsyncDisposableStack();
    stack.use({ [Symbol.asyncDispose]: async () => void order.push('a') });
    stack.adopt({ name: 'b' }, async (v) => void order.push(v.name));
    stack.defer(() => void order.push('c'));
    stack.use({ [Symbol.dispose]: () => void order.push('d') });
    stack.use(undefined);
    await stack.disposeAsync();
    expect(order).toEqual(['d', 'c', 'b', 'a']);
  });

  test('waits for each async disposer before the next one runs', async () => {
    const order: string[] = [];
    const stack = new AsyncDisposableStack();
    stack.defer(() => void order.push('first added, last disposed'));
    stack.defer(async () => {
      await new Promise((r) => setImmediate(r));
      order.push('slow');
    });
    await stack.disposeAsync();
    expect(order).toEqual(['slow', 'first added, last disposed']);
  });

  test('every disposer runs when some fail; failures are logged and chained newest first', async () => {
    const { lines, log } = recorder();
    const ran: string[] = [];
    const stack = new AsyncDisposableStack(log);
    stack.defer(() => void ran.push('x'), 'x');
    stack.defer(() => {
      throw new Error('boom y');
    }, 'y');
    stack.defer(() => void ran.push('z'), 'z');
    stack.defer(async () => {
      throw new Error('boom w');
    }, 'w');
    const err = await stack.disposeAsync().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(ran).toEqual(['z', 'x']);
    expect(err).toBeInstanceOf(DisposeError);
    const d = err as DisposeError;
    expect(d.code).toBe('LIFECYCLE_DISPOSE_FAILED');
    expect((d.error as Error).message).toBe('boom y');
    expect(d.suppressed).toBeInstanceOf(DisposeError);
    expect(((d.suppressed as DisposeError).error as Error).message).toBe('boom w');
    expect(d.errors().map((e) => (e as Error).message)).toEqual(['boom w', 'boom y']);
    expect(lines).toEqual(['disposing w failed: boom w', 'disposing y failed: boom y']);
  });

  test('idempotent: a second disposal shares the first and runs nothing again', async () => {
    let n = 0;
    const stack = new AsyncDisposableStack();
    stack.defer(() => void n++);
    const first = stack.disposeAsync();
    const second = stack[Symbol.asyncDispose]();
    await Promise.all([first, second]);
    await stack.disposeAsync();
    expect(n).toBe(1);
    expect(stack.disposed).toBe(true);
  });

  test('adding to a disposed stack disposes the newcomer and throws', async () => {
    const stack = new AsyncDisposableStack();
    await stack.disposeAsync();
    let disposed = false;
    expect(() => stack.defer(() => void (disposed = true), 'late')).toThrow(/cannot add late to a disposed stack/);
    await new Promise((r) => setImmediate(r));
    expect(disposed).toBe(true);
  });

  test('use refuses a value that is not disposable', () => {
    const stack = new AsyncDisposableStack();
    expect(() => stack.use({} as AsyncDisposable)).toThrow(TypeError);
  });
});

describe('withStack', () => {
  test('disposes after the body and returns its value', async () => {
    const order: string[] = [];
    const v = await withStack(undefined, async (stack) => {
      stack.defer(() => void order.push('disposed'));
      order.push('body');
      return 42;
    });
    expect(v).toBe(42);
    expect(order).toEqual(['body', 'disposed']);
  });

  test("the body's failure wins over a disposal failure, which is logged", async () => {
    const { lines, log } = recorder();
    const failure = new Error('start failed');
    await expect(
      withStack(log, async (stack) => {
        stack.defer(() => {
          throw new Error('close failed');
        }, 'server');
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(lines).toEqual(['disposing server failed: close failed']);
  });

  test('a disposal failure after a successful body rejects', async () => {
    await expect(
      withStack(undefined, async (stack) => {
        stack.defer(() => {
          throw new Error('close failed');
        });
        return 0;
      }),
    ).rejects.toBeInstanceOf(DisposeError);
  });
});
