import { describe, expect, test } from '@jest/globals';
import { ExpositionMerger, type SourceStats } from '../../src/metrics/merge.js';
import { PreparedSourceBuilder, validateExposition } from '../../src/metrics/prepared.js';
import { parseExposition } from '../support/metrics-parse.js';
import { ENVOY_FIXTURE, OPENMETRICS_APP_FIXTURE, TEXT_APP_FIXTURE, fixture } from '../support/metrics-servers.js';

interface Source {
  name: string;
  body: Buffer | string;
  /** Split the body into chunks of this size (default: one chunk). */
  chunk?: number;
  /** End with abort() instead of end(). */
  abort?: boolean;
  /** Begin the source in verbatim mode. */
  verbatim?: boolean;
}

function merge(openMetrics: boolean, sources: Source[]): { body: string; stats: SourceStats[] } {
  const m = new ExpositionMerger({ openMetrics });
  const out: Buffer[] = [];
  const stats: SourceStats[] = [];
  for (const s of sources) {
    const body = Buffer.isBuffer(s.body) ? s.body : Buffer.from(s.body);
    m.begin(s.name, { verbatim: s.verbatim === true });
    const size = s.chunk ?? Math.max(1, body.length);
    for (let i = 0; i < body.length; i += size) out.push(...m.write(body.subarray(i, i + size)));
    if (s.abort) stats.push(m.abort());
    else {
      const end = m.end();
      out.push(...end.out);
      stats.push(end.stats);
    }
  }
  out.push(...m.finish());
  return { body: Buffer.concat(out).toString('utf8'), stats };
}

const AGENT = '# HELP istio_agent_scrapes_total The total number of scrapes.\n# TYPE istio_agent_scrapes_total counter\nistio_agent_scrapes_total 3\n';

describe('ExpositionMerger', () => {
  test('passes distinct sources through unchanged, adding the missing final newline', () => {
    const envoy = fixture(ENVOY_FIXTURE);
    expect(envoy[envoy.length - 1]).not.toBe(0x0a); // the capture's quirk
    const { body, stats } = merge(false, [
      { name: 'agent', body: AGENT },
      { name: 'envoy', body: envoy },
    ]);
    expect(body).toBe(`${AGENT}${envoy.toString('utf8')}\n`);
    expect(stats.map((s) => s.droppedFamilies)).toEqual([[], []]);
    expect(stats[1]?.invalidLines).toBe(0);
    parseExposition(body, false);
  });

  test('output does not depend on where chunks are split (every split of a body)', () => {
    const text = `# TYPE a counter\na{x="1"} 1\n\n# EOF\n# TYPE b gauge\nb 2\r\nc_total 3`;
    const expected = merge(false, [{ name: 'agent', body: AGENT }, { name: 'app', body: text }]).body;
    for (let size = 1; size <= text.length; size++) {
      expect(merge(false, [{ name: 'agent', body: AGENT }, { name: 'app', body: text, chunk: size }]).body).toBe(expected);
    }
    expect(expected).toBe(`${AGENT}# TYPE a counter\na{x="1"} 1\n# TYPE b gauge\nb 2\r\nc_total 3\n`);
  });

  test('a family already emitted by an earlier source is dropped with its samples, wherever they sit', () => {
    // The istio-proxy capture places samples far from their # TYPE; emit it twice.
    const envoy = fixture(ENVOY_FIXTURE);
    const { body, stats } = merge(false, [
      { name: 'envoy', body: envoy, chunk: 4096 },
      { name: 'application', body: envoy, chunk: 1000 },
    ]);
    expect(body).toBe(`${envoy.toString('utf8')}\n`);
    expect(stats[1]?.droppedFamilies).toHaveLength(190);
    expect(stats[1]?.emittedLines).toBe(0);
    parseExposition(body, false);
  });

  test('histogram and summary samples follow their family (_bucket, _sum, _count); unrelated names are kept', () => {
    const first = '# TYPE req_seconds histogram\nreq_seconds_bucket{le="1"} 1\nreq_seconds_bucket{le="+Inf"} 2\nreq_seconds_sum 3\nreq_seconds_count 2\n';
    const second =
      '# HELP req_seconds dup\n# TYPE req_seconds histogram\nreq_seconds_bucket{le="+Inf"} 9\nreq_seconds_sum 9\nreq_seconds_count 9\n' +
      '# TYPE req_seconds_total counter\nreq_seconds_total 4\n' +
      'stray_sample 1\n';
    const { body, stats } = merge(false, [
      { name: 'envoy', body: first },
      { name: 'application', body: second },
    ]);
    expect(body).toBe(`${first}# TYPE req_seconds_total counter\nreq_seconds_total 4\nstray_sample 1\n`);
    expect(stats[1]?.droppedFamilies).toEqual(['req_seconds']);
    parseExposition(body, false);
  });

  test('OpenMetrics counters (_total, _created) collide with a text family of the same samples', () => {
    const text = '# TYPE rpc_requests_total counter\nrpc_requests_total{service="a"} 1\n';
    const om = '# HELP rpc_requests Total.\n# TYPE rpc_requests counter\nrpc_requests_total{service="a"} 2\nrpc_requests_created{service="a"} 1.7e+09\n# EOF\n';
    const { body, stats } = merge(true, [
      { name: 'envoy', body: text },
      { name: 'application', body: om },
    ]);
    expect(body).toBe(`${text}# EOF\n`);
    expect(stats[1]?.droppedFamilies).toEqual(['rpc_requests']);
    parseExposition(body, true);
  });

  test('samples of a dropped family that come before its # TYPE are dropped by name', () => {
    const first = '# TYPE x gauge\nx{a="1"} 1\n';
    const second = 'x{a="1"} 2\n# TYPE y gauge\ny 1\n# TYPE x gauge\nx{a="2"} 3\n';
    const { body, stats } = merge(false, [
      { name: 'envoy', body: first },
      { name: 'application', body: second },
    ]);
    expect(body).toBe(`${first}# TYPE y gauge\ny 1\n`);
    expect(stats[1]?.droppedFamilies).toEqual(['x']);
  });

  test('# EOF lines are removed anywhere; OpenMetrics gets exactly one at the end', () => {
    const om = fixture(OPENMETRICS_APP_FIXTURE).toString('utf8');
    const { body } = merge(true, [
      { name: 'agent', body: `${AGENT}# EOF\n` },
      { name: 'envoy', body: '# TYPE e gauge\n# EOF\ne 1\n' },
      { name: 'application', body: om },
    ]);
    expect(body.match(/^# EOF$/gm)).toEqual(['# EOF']);
    expect(body.endsWith('rpc_requests_created{service="uniform"} 1.7268398130168471e+09\n# EOF\n')).toBe(true);
    parseExposition(body, true);
    const text = merge(false, [{ name: 'application', body: om }]).body;
    expect(text).not.toContain('# EOF');
  });

  test('OpenMetrics mode removes free-form comments and renames untyped to unknown', () => {
    const { body } = merge(true, [{ name: 'envoy', body: '# a comment\n# TYPE u untyped\nu 1\n' }]);
    expect(body).toBe('# TYPE u unknown\nu 1\n# EOF\n');
    const text = merge(false, [{ name: 'envoy', body: '# a comment\n# TYPE u untyped\nu 1\n' }]).body;
    expect(text).toBe('# a comment\n# TYPE u untyped\nu 1\n');
  });

  test('lines that are not exposition lines are dropped and counted', () => {
    const { body, stats } = merge(false, [{ name: 'envoy', body: 'ok 1\n<html>\nnovalue\n 2\nfine{a="b"} 3\n' }]);
    expect(body).toBe('ok 1\nfine{a="b"} 3\n');
    expect(stats[0]?.invalidLines).toBe(3);
  });

  test('an aborted source keeps its complete lines and drops the partial one', () => {
    const { body } = merge(false, [{ name: 'envoy', body: 'a 1\nb 2\nc_partial', chunk: 3, abort: true }, { name: 'application', body: 'd 4\n' }]);
    expect(body).toBe('a 1\nb 2\nd 4\n');
  });

  test('an over-long line is dropped without buffering it whole', () => {
    const long = `big{l="${'x'.repeat(5000)}"} 1\n`;
    const { body, stats } = merge(false, [{ name: 'envoy', body: `a 1\n${long}b 2\n`, chunk: 512 }]);
    const m = new ExpositionMerger({ openMetrics: false, maxLineBytes: 1024 });
    m.begin('envoy');
    const out: Buffer[] = [];
    const buf = Buffer.from(`a 1\n${long}b 2\n`);
    for (let i = 0; i < buf.length; i += 512) out.push(...m.write(buf.subarray(i, i + 512)));
    const end = m.end();
    out.push(...end.out);
    expect(Buffer.concat(out).toString()).toBe('a 1\nb 2\n');
    expect(end.stats.invalidLines).toBe(1);
    expect(body).toBe(`a 1\n${long}b 2\n`);
    expect(stats[0]?.invalidLines).toBe(0);
  });

  test('UTF-8 quoted metric names are recognised', () => {
    const { body, stats } = merge(false, [
      { name: 'envoy', body: '# TYPE "my.metric" gauge\n{"my.metric",a="1"} 1\n' },
      { name: 'application', body: '{"my.metric",a="2"} 2\nother 1\n' },
    ]);
    expect(body).toBe('# TYPE "my.metric" gauge\n{"my.metric",a="1"} 1\nother 1\n');
    expect(stats[1]?.droppedFamilies).toEqual(['my.metric']);
  });
});

describe('validateExposition (the application body check)', () => {
  test('accepts the real captures', () => {
    for (const f of [ENVOY_FIXTURE, OPENMETRICS_APP_FIXTURE, TEXT_APP_FIXTURE, 'app/openmetrics.1histogram.txt', 'envoy/stats-prometheus.kuma-gauges.txt', 'envoy/stats-prometheus.kuma-response-codes.txt', 'app/openmetrics.python-client.txt']) {
      expect(validateExposition([fixture(f)])).toBeUndefined();
    }
  });
  test.each([
    ['HTML', '<html><body>metrics</body></html>\n'],
    ['JSON', '{"metrics": [1, 2]}\n'],
    ['no value', 'a_metric{a="b"}\n'],
    ['bad label', 'a_metric{a=b} 1\n'],
    ['unterminated quote', 'a_metric{a="b} 1\n'],
    ['binary', 'a 1\n\u0000\u0001\n'],
    ['bad descriptor', '# TYPE\n'],
  ])('rejects %s', (_name, body) => {
    expect(validateExposition([Buffer.from(body)])).toMatch(/line|NUL/);
  });

  test('names the first bad line, wherever the chunks split (CRLF and a missing final newline included)', () => {
    const body = '# TYPE a gauge\r\na 1\r\n\nb{x="1"} 2\n<oops>\nc 3\n<later>';
    const want = 'line 5 is not a valid exposition line: "<oops>"';
    for (let size = 1; size <= body.length; size++) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < body.length; i += size) chunks.push(Buffer.from(body.slice(i, i + size)));
      expect(validateExposition(chunks)).toBe(want);
    }
    expect(validateExposition([Buffer.from('a 1\nb 2')])).toBeUndefined();
    expect(validateExposition([Buffer.from('a 1\n<last>')])).toBe('line 2 is not a valid exposition line: "<last>"');
  });

  test('an over-long line is a problem (not buffered whole)', () => {
    const builder = new PreparedSourceBuilder('app', { openMetrics: false, validate: true, maxLineBytes: 64 });
    expect(builder.write(Buffer.from('a 1\n'))).toBeUndefined();
    expect(builder.write(Buffer.from(`b{x="${'y'.repeat(100)}`))).toBe('line 2 is longer than 64 bytes');
  });
});

describe('ExpositionMerger verbatim mode (Envoy\'s body)', () => {
  const envoy = fixture(ENVOY_FIXTURE);
  // The fixture's own names reused by the agent and the app: the careful and verbatim paths must agree.
  const clashingAgent = `${AGENT}# TYPE envoy_cluster_upstream_cx_total counter\nenvoy_cluster_upstream_cx_total 1\n`;
  const app = '# TYPE envoy_server_live gauge\nenvoy_server_live 1\n# TYPE app_only gauge\napp_only 2\n';

  test.each([
    ['no collisions', AGENT],
    ['a family the agent already emitted', clashingAgent],
  ])('emits exactly what the line-by-line path emits, whatever the chunking: %s', (_name, agent) => {
    const careful = merge(false, [
      { name: 'agent', body: agent },
      { name: 'envoy', body: envoy },
      { name: 'app', body: app },
    ]);
    for (const chunk of [1, 7, 100, 4096, envoy.length]) {
      const fast = merge(false, [
        { name: 'agent', body: agent },
        { name: 'envoy', body: envoy, chunk, verbatim: true },
        { name: 'app', body: app },
      ]);
      expect(fast.body).toBe(careful.body);
      expect(fast.stats.map((s) => s.droppedFamilies)).toEqual(careful.stats.map((s) => s.droppedFamilies));
    }
    expect(validateExposition([Buffer.from(careful.body)])).toBeUndefined();
  });

  test('a collision drops the family and its far-away samples; the app is deduplicated against Envoy', () => {
    const { body, stats } = merge(false, [
      { name: 'agent', body: clashingAgent },
      { name: 'envoy', body: envoy, chunk: 4096, verbatim: true },
      { name: 'app', body: app },
    ]);
    expect(stats[1]?.droppedFamilies).toEqual(['envoy_cluster_upstream_cx_total']);
    expect(body.match(/^envoy_cluster_upstream_cx_total[ {]/gm)).toEqual(['envoy_cluster_upstream_cx_total ']);
    expect(stats[2]?.droppedFamilies).toEqual(['envoy_server_live']);
    expect(body).toContain('app_only 2\n');
  });

  test('empty lines and # EOF are still removed, a colliding untyped sample still dropped', () => {
    const body = 'a_total 1\n\nb 2\n# EOF\nistio_agent_scrapes_total 9\nc 3';
    const { body: out } = merge(false, [
      { name: 'agent', body: AGENT },
      { name: 'envoy', body, chunk: 3, verbatim: true },
    ]);
    expect(out).toBe(`${AGENT}a_total 1\nb 2\nc 3\n`);
  });
});

describe('ExpositionMerger.adopt (a source prepared on its own while an earlier one streamed)', () => {
  /** The line-by-line result for the last source, and what adopt() makes of the same source prepared alone. */
  function both(openMetrics: boolean, earlier: Source[], last: string) {
    const run = (prepared: boolean) => {
      const m = new ExpositionMerger({ openMetrics });
      const out: Buffer[] = [];
      for (const s of earlier) {
        m.begin(s.name, { verbatim: s.verbatim === true });
        out.push(...m.write(Buffer.from(s.body)));
        out.push(...m.end().out);
      }
      if (prepared) {
        const b = new PreparedSourceBuilder('app', { openMetrics });
        for (let i = 0; i < last.length; i += 5) b.write(Buffer.from(last.slice(i, i + 5)));
        const adopted = m.adopt(b.end());
        if (!adopted) return undefined;
        out.push(...adopted.out);
        return { body: Buffer.concat([...out, ...m.finish()]).toString(), stats: adopted.stats };
      }
      m.begin('app');
      out.push(...m.write(Buffer.from(last)));
      const end = m.end();
      out.push(...end.out);
      return { body: Buffer.concat([...out, ...m.finish()]).toString(), stats: end.stats };
    };
    return { careful: run(false), fast: run(true) };
  }

  test('no collision: the same bytes and stats as the line-by-line path (EOF, comments, untyped handled)', () => {
    const app = '# HELP app_x Things.\n# TYPE app_x untyped\napp_x 1\n\n# free comment\napp_y_total 2\r\n# EOF\n';
    for (const om of [false, true]) {
      const { careful, fast } = both(om, [{ name: 'agent', body: AGENT }], app);
      expect(fast).toEqual(careful);
    }
  });

  test.each([
    ['a HELP line checks every suffix (the earlier a_total claims family a)', '# TYPE a_total counter\na_total 1\n', '# HELP a x\n# TYPE a gauge\na 1\n'],
    ['a TYPE line checks its type\'s suffixes only', '# TYPE a_total counter\na_total 1\n', '# TYPE a gauge\na 1\n'],
    ['an earlier family claims its suffixed samples', '# TYPE a histogram\n', 'a_bucket{le="1"} 1\n'],
    ['an earlier sample name claims a later family', 'b 1\n', '# TYPE b gauge\nb 2\n'],
  ])('%s: adopt agrees with the line-by-line path', (_name, agent, last) => {
    const { careful, fast } = both(false, [{ name: 'agent', body: agent }], last);
    if (fast === undefined) expect(careful?.stats.droppedFamilies.length).toBeGreaterThan(0);
    else expect(fast).toEqual(careful);
  });

  // Random sources over a small pool of names: adopt() must agree with the line-by-line path
  // exactly — same output when it adopts, and it refuses exactly when that path drops something.
  const names = ['a', 'a_total', 'a_count', 'a_bucket', 'a_sum', 'b', 'b_created', 'c_info', 'c'];
  // The last source mostly uses names of its own, sometimes the earlier ones.
  const lastNames = [...names, ...['x', 'x_total', 'x_count', 'x_bucket', 'y', 'y_sum', 'y_created', 'z_info', 'z', 'w'].flatMap((n) => [n, n, n])];
  const types = ['counter', 'gauge', 'histogram', 'summary', 'info', 'untyped', 'bogus'];
  function rnd(seed: number) {
    // mulberry32: a small, well-mixed PRNG, so every run tests the same scenarios.
    let x = seed >>> 0;
    return (n: number) => {
      x = (x + 0x6d2b79f5) >>> 0;
      let t = Math.imul(x ^ (x >>> 15), 1 | x);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
  }
  function source(r: (n: number) => number, lines: number, pool = names): string {
    const out: string[] = [];
    for (let i = 0; i < lines; i++) {
      const name = pool[r(pool.length)] as string;
      const kind = r(4);
      if (kind === 0) out.push(`# TYPE ${name} ${types[r(types.length)]}`);
      else if (kind === 1) out.push(`# HELP ${name} help`);
      else out.push(`${name}{k="${r(3)}"} ${r(100)}`);
    }
    return `${out.join('\n')}\n`;
  }

  test('agrees with the line-by-line path on 2000 random collision scenarios', () => {
    const r = rnd(42);
    let adopted = 0;
    let refused = 0;
    for (let i = 0; i < 2000; i++) {
      const earlier: Source[] = [
        { name: 'agent', body: source(r, r(4)) },
        { name: 'envoy', body: source(r, r(4)), verbatim: r(2) === 0 },
      ];
      const last = source(r, 1 + r(4), lastNames);
      const { careful, fast } = both(r(2) === 0, earlier, last);
      if (careful === undefined) throw new Error('unreachable');
      if (fast === undefined) {
        refused++;
        expect({ earlier, last, dropped: careful.stats.droppedFamilies.length > 0 }).toEqual({ earlier, last, dropped: true });
      } else {
        adopted++;
        expect({ earlier, last, ...fast }).toEqual({ earlier, last, ...careful });
      }
    }
    // Both outcomes are well represented.
    expect(adopted).toBeGreaterThan(200);
    expect(refused).toBeGreaterThan(200);
  });
});
