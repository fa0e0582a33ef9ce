/**
 * StatusRegistry (issue 17) and the `/` and `/status` routes on a real StatusServer: providers
 * in registration order, a throwing provider reported under its name, duplicate names refused,
 * the routes absent (404) without a registry, JSON and HTML content types, gzip when accepted.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import http from 'node:http';
import zlib from 'node:zlib';
import { Ring, StatusRegistry } from '../../src/status/registry.js';
import { startStatus, type StatusHarness } from '../support/status-harness.js';

let harness: StatusHarness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

function get(port: number, p: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      })
      .on('error', reject);
  });
}

describe('StatusRegistry', () => {
  test('sections in registration order; a throwing provider becomes { error }; duplicate names throw', () => {
    const r = new StatusRegistry();
    r.register({ name: 'b', snapshot: () => ({ n: 1 }) });
    r.register({ name: 'a', snapshot: () => { throw new Error('boom'); } });
    expect(() => r.register({ name: 'b', snapshot: () => ({}) })).toThrow('status provider b is already registered');
    const doc = r.snapshot(new Date('2026-01-02T03:04:05.678Z'));
    expect(doc).toEqual({ schemaVersion: 1, generatedAt: '2026-01-02T03:04:05.678Z', sections: { b: { n: 1 }, a: { error: 'snapshot failed: boom' } } });
    expect(Object.keys(doc.sections)).toEqual(['b', 'a']);
  });

  test('Ring keeps the last `capacity` items, oldest first', () => {
    const ring = new Ring<number>(3);
    for (let i = 1; i <= 5; i++) ring.push(i);
    expect(ring.toArray()).toEqual([3, 4, 5]);
    expect(ring.last()).toBe(5);
  });
});

describe('/ and /status on the status server', () => {
  test('without a registry both are 404', async () => {
    harness = await startStatus();
    expect((await get(harness.port, '/')).status).toBe(404);
    expect((await get(harness.port, '/status')).status).toBe(404);
  });

  test('JSON document and HTML page, not cached, gzip when accepted; the page loads nothing external', async () => {
    const registry = new StatusRegistry();
    let calls = 0;
    registry.register({ name: 'dns', snapshot: () => ({ calls: ++calls }) });
    harness = await startStatus({ status: registry });
    const json = await get(harness.port, '/status?pretty');
    expect(json.status).toBe(200);
    expect(json.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(json.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(json.body.toString()).sections).toEqual({ dns: { calls: 1 } });
    const gz = await get(harness.port, '/status', { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(JSON.parse(zlib.gunzipSync(gz.body).toString()).sections).toEqual({ dns: { calls: 2 } });
    const page = await get(harness.port, '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    const html = page.body.toString();
    expect(html).toContain('<title>pilot-agent status</title>');
    expect(html).not.toMatch(/\b(src|href)="(https?:)?\/\//);
    expect(calls).toBe(2); // the page itself builds no snapshot
  });
});
