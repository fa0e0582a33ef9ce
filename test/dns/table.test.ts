/**
 * The name table's expansion and answer rules (Istio's pkg/dns/client semantics) as goldens:
 * short names for Kubernetes entries under the proxy's domain only, none for External
 * (ServiceEntry) hosts, search-domain CNAMEs, headless per-pod names, wildcards, family
 * mismatch (NOERROR, no answer), other types forwarded. Records are shown sorted where the
 * rule is "shuffled", and the shuffle itself is tested separately.
 */
import { describe, expect, test } from '@jest/globals';
import { buildLookupTable, debugNameTable, lookupHost, proxyDomainParts, type TableContext } from '../../src/dns/table.js';
import type { NameTable } from '../../src/dns/nds.js';
import { expectGolden } from '../support/golden.js';

const ctx: TableContext = { namespace: 'ns1', domain: 'ns1.svc.cluster.local', search: ['ns1.svc.cluster.local', 'svc.cluster.local', 'cluster.local'] };

const info = (ips: string[], registry = 'Kubernetes', shortname = '', namespace = '') => ({ ips, registry, shortname, namespace, altHosts: [] });

/** Shaped like istiod's tables (Istio's dns_test.go fixtures: services, headless pods, ServiceEntries). */
export const TABLE: NameTable = {
  'productpage.ns1.svc.cluster.local': info(['10.0.0.1'], 'Kubernetes', 'productpage', 'ns1'),
  'reviews.ns2.svc.cluster.local': info(['10.0.0.2', '10.0.0.3'], 'Kubernetes', 'reviews', 'ns2'),
  'dual.ns1.svc.cluster.local': info(['10.0.0.4', 'fd00::4'], 'Kubernetes', 'dual', 'ns1'),
  'v6only.ns1.svc.cluster.local': info(['fd00::5'], 'Kubernetes', 'v6only', 'ns1'),
  'headless.ns1.svc.cluster.local': info(['10.1.0.1', '10.1.0.2'], 'Kubernetes', 'headless', 'ns1'),
  'pod-0.headless.ns1.svc.cluster.local': info(['10.1.0.1'], 'Kubernetes', 'pod-0.headless', 'ns1'),
  'remote.ns1.svc.other.domain': info(['10.2.0.1'], 'Kubernetes', 'remote', 'ns1'),
  'www.example.com': info(['1.1.1.1'], 'External'),
  '*.wildcard.example': info(['2.2.2.2'], 'External'),
  '*.v6wild.example': info(['fd00::7'], 'External'),
  'noaddr.example.com': info([], 'External'),
  'bad.example.com': info(['not-an-ip'], 'External'),
  'dotted.example.com.': info(['3.3.3.3'], 'External'),
};

function render(): string {
  const t = buildLookupTable(TABLE, ctx);
  const lines = [`entries ${t.entries}`];
  for (const h of [...t.hosts].sort()) {
    const parts = [h];
    if (t.cname.has(h)) parts.push(`CNAME ${t.cname.get(h)}`);
    if (t.v4.has(h)) parts.push(`A ${t.v4.get(h)?.join(',')}`);
    if (t.v6.has(h)) parts.push(`AAAA ${t.v6.get(h)?.join(',')}`);
    lines.push(parts.join('  '));
  }
  return `${lines.join('\n')}\n`;
}

const sorted = <T>(a: T[]) => a;
const QUERIES: Array<[string, string]> = [
  ['A', 'productpage'],
  ['A', 'productpage.ns1'],
  ['A', 'productpage.ns1.svc'],
  ['A', 'productpage.ns1.svc.cluster.local'],
  ['A', 'ProductPage.NS1.svc.cluster.local.'],
  ['A', 'productpage.ns1.ns1.svc.cluster.local'],
  ['A', 'reviews.ns2'],
  ['A', 'reviews'],
  ['A', 'reviews.ns2.ns1.svc.cluster.local'],
  ['AAAA', 'dual'],
  ['A', 'v6only'],
  ['AAAA', 'v6only'],
  ['A', 'pod-0.headless.ns1.svc.cluster.local'],
  ['A', 'headless.ns1'],
  ['A', 'pod-0.headless'],
  ['A', 'pod-0.headless.ns1'],
  ['A', 'remote.ns1.svc.other.domain'],
  ['A', 'remote.ns1'],
  ['A', 'www.example.com'],
  ['A', 'www.example.com.ns1.svc.cluster.local'],
  ['AAAA', 'www.example.com'],
  ['A', 'www'],
  ['A', 'foo.wildcard.example'],
  ['A', 'a.b.wildcard.example'],
  ['A', 'wildcard.example'],
  ['A', 'foo.wildcard.example.ns1.svc.cluster.local'],
  ['AAAA', 'foo.v6wild.example'],
  ['A', 'foo.v6wild.example'],
  ['A', 'noaddr.example.com'],
  ['A', 'bad.example.com'],
  ['A', 'dotted.example.com'],
  ['TXT', 'productpage'],
  ['MX', 'www.example.com'],
  ['A', 'unknown.example.org'],
];

describe('name table', () => {
  test('expansion golden', () => {
    expectGolden('dns/table.txt', render());
  });

  test('answer rules golden', () => {
    const t = buildLookupTable(TABLE, ctx);
    const lines = QUERIES.map(([type, name]) => {
      const r = lookupHost(t, type, name, sorted);
      const verdict = !r.found ? 'forward' : r.answers.length === 0 ? 'NOERROR (no answer)' : 'NOERROR';
      const rrs = r.answers.map((a) => `    ${a.name} ${a.ttl} ${a.type} ${a.data}`);
      return [`${type} ${name} → ${verdict}`, ...rrs].join('\n');
    });
    expectGolden('dns/answers.txt', `${lines.join('\n')}\n`);
  });

  test('address records are shuffled, CNAME stays first', () => {
    const many: NameTable = { 'big.ns1.svc.cluster.local': info(Array.from({ length: 8 }, (_, i) => `10.9.0.${i + 1}`), 'Kubernetes', 'big', 'ns1') };
    const t = buildLookupTable(many, ctx);
    const orders = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const r = lookupHost(t, 'A', 'big.ns1.ns1.svc.cluster.local');
      expect(r.answers[0]?.type).toBe('CNAME');
      expect(r.answers.slice(1).map((a) => a.data).sort()).toEqual(many['big.ns1.svc.cluster.local']?.ips.slice().sort());
      orders.add(r.answers.map((a) => a.data).join(','));
    }
    expect(orders.size).toBeGreaterThan(1);
  });

  test('no proxy domain: no short names; search domain optional', () => {
    const t = buildLookupTable(TABLE, { namespace: 'ns1', domain: '', search: [] });
    expect(t.hosts.has('productpage.')).toBe(false);
    expect(t.hosts.has('productpage.ns1.svc.cluster.local.')).toBe(true);
    expect(t.cname.size).toBe(0);
    expect(proxyDomainParts({ namespace: 'ns1', domain: 'ns1.svc.cluster.local' })).toEqual({ domain: 'svc.cluster.local', parts: ['svc', 'cluster', 'local'] });
  });

  test('/debug/ndsz form adds the generated names with their addresses', () => {
    const d = debugNameTable({ 'productpage.ns1.svc.cluster.local': TABLE['productpage.ns1.svc.cluster.local'] as NameTable[string] }, ctx);
    expect(Object.keys(d).sort()).toEqual(['productpage.', 'productpage.ns1.', 'productpage.ns1.svc.', 'productpage.ns1.svc.cluster.local', 'productpage.ns1.svc.cluster.local.']);
    expect(d['productpage.']?.ips).toEqual(['10.0.0.1']);
  });
});
