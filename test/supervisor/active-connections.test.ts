import { describe, expect, test } from '@jest/globals';
import { activeConnections } from '../../src/supervisor/drain.js';

describe('active downstream connections (SPEC §5.2)', () => {
  test('sums listener totals, skipping workers, internal, admin and the 15021/15090 listeners', () => {
    const body = [
      'listener.0.0.0.0_15006.downstream_cx_active: 3',
      'listener.0.0.0.0_15006.worker_0.downstream_cx_active: 2',
      'listener.0.0.0.0_15006.worker_1.downstream_cx_active: 1',
      'listener.10.244.1.7_80.downstream_cx_active: 4',
      'listener.envoy_internal_x.downstream_cx_active: 9',
      'listener.admin.downstream_cx_active: 1',
      'listener.0.0.0.0_15021.downstream_cx_active: 5',
      'listener.127.0.0.1_15090.downstream_cx_active: 6',
      'listener.[__]_15090.downstream_cx_active: 6',
      'http.agent.downstream_cx_active: 7',
      'garbage line',
      'a: b: c',
      '',
    ].join('\n');
    expect(activeConnections(body, [15021, 15090])).toBe(7);
  });

  test('zero when only excluded listeners have connections', () => {
    expect(activeConnections('listener.0.0.0.0_15021.downstream_cx_active: 1\nlistener.admin.downstream_cx_active: 1', [15021, 15090])).toBe(0);
  });
});
