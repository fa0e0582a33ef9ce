import { describe, expect, test } from '@jest/globals';
import { CONFIG_STATS_FILTER, STATE_STATS_FILTER, configStatus, liveStatus } from '../../src/status/ready.js';
import { parseStatsText } from '../../src/envoy/admin.js';

const stats = (text: string) => parseStatsText(text);

describe('readiness messages (SPEC §6.1, Istio text)', () => {
  test('the admin filters as Istio sends them', () => {
    expect(CONFIG_STATS_FILTER).toBe('^(cluster_manager\\.cds|listener_manager\\.lds)\\.(update_success|update_rejected)$');
    expect(STATE_STATS_FILTER).toBe('^(server\\.state|listener_manager\\.workers_started)');
  });

  test('config not received (missing stats count as 0)', () => {
    expect(configStatus(stats(''))).toBe(
      'config not received from XDS server (is Istiod running?): cds updates: 0 successful, 0 rejected; lds updates: 0 successful, 0 rejected',
    );
  });

  test('rejected', () => {
    expect(configStatus(stats('cluster_manager.cds.update_success: 1\ncluster_manager.cds.update_rejected: 2'))).toBe(
      'config received from XDS server, but was rejected: cds updates: 1 successful, 2 rejected; lds updates: 0 successful, 0 rejected',
    );
  });

  test('not fully received', () => {
    expect(configStatus(stats('listener_manager.lds.update_success: 1'))).toBe(
      'config not fully received from XDS server: cds updates: 0 successful, 0 rejected; lds updates: 1 successful, 0 rejected',
    );
  });

  test('received', () => {
    expect(configStatus(stats('cluster_manager.cds.update_success: 1\nlistener_manager.lds.update_success: 3'))).toBeUndefined();
  });

  test('state', () => {
    expect(liveStatus(stats('server.state: 2'), 'server.state: 2')).toBe('server is not live, current state is: PRE_INITIALIZING');
    expect(liveStatus(stats('server.state: 3'), '')).toBe('server is not live, current state is: INITIALIZING');
    expect(liveStatus(stats('server.state: 1'), '')).toBe('server is not live, current state is: DRAINING');
    expect(liveStatus(stats('server.state: 0'), '')).toBe('workers have not yet started');
    expect(liveStatus(stats('server.state: 0\nlistener_manager.workers_started: 1'), '')).toBeUndefined();
    expect(liveStatus(stats(''), 'x')).toBe('failed to get readiness stats: server.state is not yet updated: x');
  });
});
