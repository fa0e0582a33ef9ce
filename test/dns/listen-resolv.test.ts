/**
 * PURE parts of the DNS proxy's set-up: where it listens (Istio's rules for `localhost` and
 * `:53`), resolv.conf parsing, and how long an upstream answer may be cached.
 */
import { describe, expect, test } from '@jest/globals';
import { planListeners } from '../../src/dns/listen.js';
import { parseResolvConf, splitHostPort } from '../../src/dns/resolv.js';
import { cacheTtl } from '../../src/dns/cache.js';

describe('listen plan', () => {
  test('localhost follows the nameservers\' families', () => {
    expect(planListeners('localhost:15053', 1337, ['10.96.0.10']).addresses).toEqual([{ host: '127.0.0.1', port: 15053 }]);
    expect(planListeners('localhost:15053', 1337, ['fd00::a']).addresses).toEqual([{ host: '::1', port: 15053 }]);
    expect(planListeners('localhost:15053', 1337, ['10.96.0.10', 'fe80::1%eth0']).addresses).toEqual([
      { host: '127.0.0.1', port: 15053 },
      { host: '::1', port: 15053 },
    ]);
    expect(planListeners('localhost:15053', 1337, []).addresses).toEqual([{ host: '127.0.0.1', port: 15053 }]);
    expect(planListeners('', 1337, []).addresses).toEqual([{ host: '127.0.0.1', port: 15053 }]);
    expect(planListeners('[::1]:5353', 1337, ['10.0.0.1']).addresses).toEqual([{ host: '::1', port: 5353 }]);
  });

  test(':53 as root answers before the table and prefers /var/lib/istio/resolv.conf; not root falls back with a warning', () => {
    expect(planListeners('0.0.0.0:53', 0, [])).toMatchObject({ addresses: [{ host: '0.0.0.0', port: 53 }], respondBeforeSync: true, preferRootResolvConf: true, warnings: [] });
    const user = planListeners('0.0.0.0:53', 1337, ['10.0.0.1']);
    expect(user).toMatchObject({ addresses: [{ host: '127.0.0.1', port: 15053 }], respondBeforeSync: false });
    expect(user.warnings).toEqual(['DNS_PROXY_ADDR 0.0.0.0:53: port 53 needs root; using localhost:15053']);
  });

  test('a malformed address names the variable and the expected form', () => {
    expect(() => planListeners('localhost', 0, [])).toThrow('DNS_PROXY_ADDR: expected host:port like "localhost:15053", got "localhost"');
    expect(() => planListeners('host:99999', 0, [])).toThrow('DNS_PROXY_ADDR');
  });
});

describe('resolv.conf', () => {
  test('nameservers (port 53, IPv6 bracketed), the last search line, comments ignored', () => {
    const r = parseResolvConf('# generated\nnameserver 10.96.0.10\nnameserver fd00::a ; comment\nnameserver not-an-ip\nsearch a.svc b.svc\noptions ndots:5\nsearch ns.svc.cluster.local svc.cluster.local\n');
    expect(r).toEqual({ servers: ['10.96.0.10:53', '[fd00::a]:53'], addresses: ['10.96.0.10', 'fd00::a'], search: ['ns.svc.cluster.local', 'svc.cluster.local'] });
    expect(splitHostPort('[fd00::a]:53')).toEqual({ host: 'fd00::a', port: 53 });
  });
});

describe('cache TTL', () => {
  const a = (ttl: number) => ({ type: 'A' as const, name: 'x', ttl, class: 'IN' as const, data: '1.2.3.4' });
  test('smallest record TTL; negative answers by their SOA; SERVFAIL and TC not cached', () => {
    expect(cacheTtl({ type: 'response', flags: 0, answers: [a(60), a(20)] })).toBe(20);
    expect(cacheTtl({ type: 'response', flags: 3, answers: [], authorities: [{ type: 'SOA', name: 'x', ttl: 300, data: { mname: 'a', rname: 'b', minimum: 30 } } as never] })).toBe(30);
    expect(cacheTtl({ type: 'response', flags: 3, answers: [] })).toBeUndefined();
    expect(cacheTtl({ type: 'response', flags: 2, answers: [a(60)] })).toBeUndefined();
    expect(cacheTtl({ type: 'response', flags: 1 << 9, answers: [a(60)] })).toBeUndefined();
  });
});
