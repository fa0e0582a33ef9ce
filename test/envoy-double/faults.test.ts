/**
 * Injected faults: crash after N ms with an exit code or a signal (stderr lines first, exit
 * recorded), a crash switched on through the control file on a running double, SIGTERM's exit
 * code, and a double that ignores SIGTERM (so the agent's SIGKILL escalation can be tested).
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import {
  disposeTrackedDoubles,
  startTrackedDouble,
} from '../support/envoy-double-harness.js';

afterEach(disposeTrackedDoubles);
const start = startTrackedDouble;

describe('crash faults', () => {
  test('crash after N ms with an exit code, printing the configured stderr lines first', async () => {
    const t0 = Date.now();
    const d = start({
      env: {
        ENVOY_DOUBLE_CRASH_AFTER_MS: '300',
        ENVOY_DOUBLE_EXIT_CODE: '3',
        ENVOY_DOUBLE_STDERR_ON_CRASH: 'Caught Segmentation fault, suspect faulting address 0x0\nBacktrace (use tools/stack_decode.py to get line numbers):',
      },
    });
    await d.live();
    expect(await d.waitExit()).toEqual({ code: 3, signal: null });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(d.stderr).toMatch(/Caught Segmentation fault, suspect faulting address 0x0\nBacktrace \(use tools\/stack_decode\.py to get line numbers\):\n$/);
    expect(d.records().at(-1)).toMatchObject({ pid: d.pid, event: 'exit', code: 3 });
  });

  test('crash with a signal (SIGSEGV), recorded before the process dies', async () => {
    const d = start({ env: { ENVOY_DOUBLE_CRASH_AFTER_MS: '50', ENVOY_DOUBLE_EXIT_SIGNAL: 'SIGSEGV' } });
    expect(await d.waitExit()).toEqual({ code: null, signal: 'SIGSEGV' });
    expect(d.records().at(-1)).toMatchObject({ pid: d.pid, event: 'exit', signal: 'SIGSEGV' });
  });

  test('the control file can crash a running double (SIGKILL), and flip faults back off', async () => {
    const d = start();
    await d.live();
    await d.control({ adminHang: true });
    await expect(d.admin('GET', '/ready', 200)).rejects.toThrow(/timed out/);
    await d.control({ adminHang: false });
    expect((await d.admin('GET', '/ready')).body).toBe('LIVE\n');
    d.setControl({ crashAfterMs: 0, exitSignal: 'SIGKILL' });
    expect(await d.waitExit()).toEqual({ code: null, signal: 'SIGKILL' });
  });
});

describe('SIGTERM faults', () => {
  test('exit code on SIGTERM', async () => {
    const d = start({ env: { ENVOY_DOUBLE_SIGTERM_EXIT_CODE: '5' } });
    await d.live();
    d.signal('SIGTERM');
    expect(await d.waitExit()).toEqual({ code: 5, signal: null });
  });

  test('a double that ignores SIGTERM keeps serving until SIGKILL', async () => {
    const d = start({ env: { ENVOY_DOUBLE_IGNORE_SIGTERM: '1' } });
    await d.live();
    d.signal('SIGTERM');
    await d.waitForState('SIGTERM noticed', () => d.stderr.includes('ignoring SIGTERM'));
    expect((await d.admin('GET', '/ready')).body).toBe('LIVE\n');
    expect(d.exit).toBeUndefined();
    d.signal('SIGKILL');
    expect(await d.waitExit()).toEqual({ code: null, signal: 'SIGKILL' });
  });
});
