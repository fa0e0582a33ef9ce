/**
 * The agent's logger (src/log.ts): Istio level names, filtering, child scopes, the exact text
 * line (pinned to what the pino-based logger printed; Istio's microsecond time), the JSON record, error serialisation,
 * and the default destination in real processes: synchronous writes to fd 2 that survive an
 * immediate `process.exit`, and a full non-blocking stderr pipe (EAGAIN) that is waited out
 * instead of throwing.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createLogger, parseIstioLogLevel, type LogOptions, type Logger } from '../src/log.js';
import { REPO } from './support/metrics-servers.js';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
/** The leading stamp of each text line, and the `"time"` of a JSON record. */
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z|(?<="time":")[^"]+/gm;

function capture(options: Omit<LogOptions, 'destination'> = {}): { log: Logger; lines: string[]; text: () => string } {
  const lines: string[] = [];
  const log = createLogger({ ...options, destination: { write: (l: string) => void lines.push(l) } });
  return { log, lines, text: () => lines.join('').replace(TIME, 'T') };
}

describe('levels', () => {
  test("Istio's --log_output_level: default/all scope, warning and none, other scopes ignored", () => {
    expect(parseIstioLogLevel(undefined)).toBe('info');
    expect(parseIstioLogLevel('')).toBe('info');
    expect(parseIstioLogLevel('debug')).toBe('debug');
    expect(parseIstioLogLevel('default:warning')).toBe('warn');
    expect(parseIstioLogLevel('all:none')).toBe('silent');
    expect(parseIstioLogLevel('misc:debug,default:error')).toBe('error');
    expect(parseIstioLogLevel('misc:debug')).toBe('info');
    expect(parseIstioLogLevel('default:bogus', 'warn')).toBe('warn');
    expect(parseIstioLogLevel(' DEBUG ')).toBe('debug');
  });

  test('records below the level are dropped; isLevelEnabled and level follow it; a child keeps its own level', () => {
    const { log, text } = capture({ outputLevel: 'default:warning' });
    log.trace('t');
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    log.fatal('f');
    expect(text()).toBe('T\twarn\tw\nT\terror\te\nT\tfatal\tf\n');
    expect(log.level).toBe('warn');
    expect([log.isLevelEnabled('info'), log.isLevelEnabled('warn'), log.isLevelEnabled('fatal'), log.isLevelEnabled('nope')]).toEqual([false, true, true, false]);

    const child = log.child({ scope: 'c' });
    expect(child.level).toBe('warn');
    child.level = 'debug';
    expect(child.isLevelEnabled('debug')).toBe(true);
    expect(log.isLevelEnabled('debug')).toBe(false);
    log.level = 'silent';
    log.fatal('hidden');
    expect(log.isLevelEnabled('fatal')).toBe(false);
    child.debug('shown');
    expect(text().endsWith('T\tdebug\tc\tshown\n')).toBe(true);
    expect(() => (log.level = 'loud' as never)).toThrow(/unknown level/);
  });

  test("outputLevel 'none' writes nothing at all", () => {
    const { log, lines } = capture({ outputLevel: 'none' });
    log.fatal('x');
    log.child({ scope: 's' }).error(new Error('y'));
    expect(lines).toEqual([]);
  });
});

describe('text format: <ISO time>\\t<level>\\t[<scope>\\t]<msg>[\\t k=v …]', () => {
  test('a line is stamped with the current time in ISO form', () => {
    const { log, lines } = capture();
    const before = Date.now();
    log.info('now');
    const stamp = lines[0]?.split('\t')[0] ?? '';
    expect(stamp).toMatch(ISO);
    expect(Date.parse(stamp)).toBeGreaterThanOrEqual(before - 1);
    expect(Date.parse(stamp)).toBeLessThanOrEqual(Date.now() + 1);
  });

  test("stamps carry microseconds, like Istio's (2006-01-02T15:04:05.000000Z), and never go back", () => {
    const { log, lines } = capture();
    for (let i = 0; i < 200; i++) log.info('tick');
    const stamps = lines.map((l) => l.split('\t')[0] ?? '');
    expect(stamps.every((s) => ISO.test(s))).toBe(true);
    expect(stamps.every((s, i) => i === 0 || s >= (stamps[i - 1] ?? ''))).toBe(true);
    // Sub-millisecond digits come from the monotonic clock, not zero padding.
    expect(stamps.some((s) => !s.endsWith('000Z'))).toBe(true);
  });

  test('the lines the pino-based logger printed, byte for byte (time aside)', () => {
    const { log, text } = capture({ outputLevel: 'debug' });
    log.info('plain');
    log.warn({ a: 1, b: 'two', c: { d: [1, 2] }, e: null, f: true, u: undefined }, 'with fields');
    const sup = log.child({ scope: 'sup' });
    sup.info('child msg');
    sup.child({ scope: 'inner', extra: 'x' }).error('nested');
    sup.debug({ scope: 'override' }, 'override scope');
    log.error({ err: 'notanerror' }, 'str err');
    log.info({ n: 1 });
    log.info('fmt %s and %d, %i%% %j', 'x', 5, 2.7, { k: 'v' });
    log.info('extra arg', 'y');
    log.info({ msg: 'in obj' });
    log.info({ msg: 'in obj' }, 'both');
    log.info('tab\tand\nnewline "q"');
    log.info({ big: 10n }, 'bigint');
    log.info({ s: 'has space' }, 'spaces');
    log.info(12);
    log.info(undefined);
    log.info({ date: new Date(0) }, 'date');
    expect(text()).toBe(
      [
        'T\tinfo\tplain',
        'T\twarn\twith fields\ta=1 b=two c={"d":[1,2]} e=null f=true',
        'T\tinfo\tsup\tchild msg',
        'T\terror\tinner\tnested\textra=x',
        'T\tdebug\toverride\toverride scope',
        'T\terror\tstr err\terr=notanerror',
        'T\tinfo\t\tn=1',
        'T\tinfo\tfmt x and 5, 2% {"k":"v"}',
        'T\tinfo\textra arg',
        'T\tinfo\tin obj',
        'T\tinfo\tboth',
        'T\tinfo\ttab\tand\nnewline "q"',
        'T\tinfo\tbigint\tbig=10',
        'T\tinfo\tspaces\ts=has space',
        'T\tinfo\t12',
        'T\tinfo\t',
        'T\tinfo\tdate\tdate=1970-01-01T00:00:00.000Z',
        '',
      ].join('\n'),
    );
  });

  test('what a caller cannot serialise is degraded, never thrown', () => {
    const { log, text } = capture();
    const loop: Record<string, unknown> = { name: 'loop' };
    loop.self = loop;
    log.info({ loop }, 'circular');
    const hostile = {
      toJSON() {
        throw new Error('no');
      },
    };
    log.info({ hostile }, 'hostile');
    log.info({ huge: 2n ** 70n }, 'big');
    log.info(
      {
        get bad(): never {
          throw new Error('getter');
        },
      },
      'getter',
    );
    expect(text()).toBe(
      'T\tinfo\tcircular\tloop={"name":"loop","self":"[Circular]"}\n' +
        // pino's placeholder for a value it cannot stringify.
        'T\tinfo\thostile\thostile=[unable to serialize, circular reference is too complex to analyze]\n' +
        'T\tinfo\tbig\thuge=1180591620717411303424\n' +
        'T\tinfo\t[unserializable]\n',
    );
    const broken = createLogger({
      destination: {
        write() {
          throw new Error('EPIPE');
        },
      },
    });
    expect(() => broken.error('lost')).not.toThrow();
  });
});

describe('JSON format (--log_as_json)', () => {
  test('{"level":<n>,"time":<ISO>, bindings, fields, "msg"}: one object per line, bindings merged', () => {
    const { log, lines } = capture({ asJson: true, outputLevel: 'debug' });
    log.info('plain');
    const c = log.child({ scope: 'sup' }).child({ scope: 'inner', extra: 'x' });
    c.warn({ a: 1, extra: 'y' }, 'hello %s', 'you');
    log.debug({ n: 1 });
    expect(lines.every((l) => l.endsWith('}\n') && !l.slice(0, -1).includes('\n'))).toBe(true);
    const recs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(recs.map((r) => Object.keys(r))).toEqual([
      ['level', 'time', 'msg'],
      ['level', 'time', 'scope', 'extra', 'a', 'msg'],
      ['level', 'time', 'n'],
    ]);
    expect(recs[1]).toEqual({ level: 40, time: expect.stringMatching(ISO), scope: 'inner', extra: 'y', a: 1, msg: 'hello you' });
    expect(recs.map((r) => r.level)).toEqual([30, 40, 20]);
    // The exact bytes of the simplest record (what log shippers see).
    expect(lines[0]?.replace(TIME, 'T')).toBe('{"level":30,"time":"T","msg":"plain"}\n');
    // Each key once: a child's binding and a call's field replace the earlier value in place.
    expect(lines[1]?.replace(TIME, 'T')).toBe('{"level":40,"time":"T","scope":"inner","extra":"y","a":1,"msg":"hello you"}\n');
  });
});

describe('errors (pino err serializer shape)', () => {
  class CodedError extends Error {
    code = 'E_CODED';
  }

  test('{ err }, a bare Error, and an Error under any key: type, message and stack with causes, own props', () => {
    const { log, lines } = capture({ asJson: true });
    const inner = new Error('inner');
    const outer = new CodedError('outer', { cause: inner });
    log.error({ err: outer }, 'failed');
    log.error(new Error('bare'));
    log.error(new Error('bare'), 'with msg');
    log.warn({ reason: new TypeError('typed') }, 'other key');
    const recs = lines.map((l) => JSON.parse(l) as { msg: string; err?: Record<string, unknown>; reason?: Record<string, unknown> });

    expect(recs[0]?.msg).toBe('failed');
    expect(recs[0]?.err).toEqual({ type: 'CodedError', message: 'outer: inner', stack: expect.any(String), code: 'E_CODED' });
    const stack = String(recs[0]?.err?.stack);
    expect(stack.startsWith('Error: outer\n    at ')).toBe(true);
    expect(stack).toContain('\ncaused by: Error: inner\n    at ');
    expect(stack).toContain('log.test.ts');

    expect(recs[1]).toMatchObject({ msg: 'bare', err: { type: 'Error', message: 'bare' } });
    expect(recs[2]).toMatchObject({ msg: 'with msg', err: { type: 'Error', message: 'bare' } });
    expect(recs[3]?.reason).toMatchObject({ type: 'TypeError', message: 'typed', stack: expect.stringContaining('TypeError: typed') });
  });

  test('text format prints the serialised error as JSON; circular causes terminate', () => {
    const { log, lines } = capture();
    const a = new Error('a') as Error & { cause?: unknown };
    const b = new Error('b', { cause: a });
    a.cause = b;
    log.error({ err: b }, 'loop');
    const line = lines[0] ?? '';
    expect(line).toMatch(/^\S+\terror\tloop\terr=\{"type":"Error","message":"b: a: b: \.\.\.","stack":"Error: b\\n/);
    expect(line).toContain('causes have become circular...');
    expect(line.endsWith('}\n')).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Real processes, default destination (fd 2).

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'log-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const LOG_JS = pathToFileURL(path.join(REPO, 'dist', 'src', 'log.js')).href;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs an ESM script; `holdStderr` keeps the child's stderr unread until its stdout says `full`. */
function run(name: string, source: string, holdStderr = false): Promise<Run> {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, source);
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  const stderr: Buffer[] = [];
  const readStderr = () => child.stderr.on('data', (d: Buffer) => void stderr.push(d));
  if (!holdStderr) readStderr();
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    const first = !stdout.includes('full\n');
    stdout += d;
    if (holdStderr && first && stdout.includes('full\n')) readStderr();
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr: Buffer.concat(stderr).toString('utf8') }));
  });
}

describe('default destination: fd 2, synchronous', () => {
  test('every line is on stderr before an immediate process.exit, and no worker thread is started', async () => {
    const r = await run(
      'exit.mjs',
      `import fs from 'node:fs';
const threads = () => Number(/^Threads:\\s+(\\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]);
const { createLogger } = await import(${JSON.stringify(LOG_JS)});
const before = threads();
const log = createLogger({ outputLevel: 'default:info' }).child({ scope: 'child' });
for (let i = 0; i < 2000; i++) log.info({ i }, 'line');
log.debug('dropped');
process.stdout.write(JSON.stringify({ before, after: threads() }) + '\\n', () => process.exit(3));
`,
    );
    expect(r.code).toBe(3);
    const threads = JSON.parse(r.stdout) as { before: number; after: number };
    expect(threads.after).toBe(threads.before);
    const lines = r.stderr.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(2000);
    lines.forEach((l, i) => expect(l.replace(TIME, 'T')).toBe(`T\tinfo\tchild\tline\ti=${i}`));
  });

  test("the agent's lines and Envoy's forwarded stderr lines share a pipe without tearing each other", async () => {
    // The child (test/support/log-interleave-child.ts) logs while forwarding a noisy process's
    // stderr through EnvoyProcess; both kinds of line are often longer than PIPE_BUF. Its fd 2
    // is a real pipe(2) (a shell pipeline) read by `dd bs=1500`: small reads free the pipe a
    // little at a time, so writers often find room for part of a line. Every line read must be
    // one whole line of one writer. (Without the logger's queueing behind process.stderr, this
    // saw ~20 torn lines per run.) Agent lines keep their order; any the logger drops while
    // stderr is over a MiB behind are announced, with their number, by a notice before the next.
    const childJs = path.join(REPO, 'dist', 'test', 'support', 'log-interleave-child.js');
    const script = '"$1" "$2" 2000 2000 2>&1 1>&3 3>&- | dd status=none bs=1500 3>&-';
    const child = spawn('sh', ['-c', script, 'sh', process.execPath, childJs], { stdio: ['ignore', 'pipe', 'inherit', 'pipe'] });
    // fd 1 of the shell: what dd read from the child's fd 2; fd 3: the child's own stdout.
    let summaryText = '';
    (child.stdio[3] as NodeJS.ReadableStream).setEncoding('utf8').on('data', (d: string) => void (summaryText += d));
    const chunks: Buffer[] = [];
    (child.stdio[1] as NodeJS.ReadableStream).on('data', (d: Buffer) => void chunks.push(d));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    expect(code).toBe(0);
    const summary = JSON.parse(summaryText) as { agentLines: number; envoyLines: number; dropped: number; fifo: boolean };
    expect(summary.fifo).toBe(true);
    const lines = Buffer.concat(chunks).toString('utf8').split('\n');
    expect(lines.pop()).toBe('');
    const agent: number[] = [];
    const envoy: number[] = [];
    const torn: string[] = [];
    let announced = 0;
    let next = 0;
    let done = false;
    for (const line of lines) {
      const a = /^(\S+)\tinfo\tagent\tA(\d+) (x*)$/.exec(line);
      const e = /^E(\d+) (e*)$/.exec(line);
      const notice = /^\S+\twarn\t(\d+) log lines dropped: stderr was backed up$/.exec(line);
      if (a && ISO.test(a[1] ?? '') && (a[3] ?? '').length === (Number(a[2]) * 997) % 9000) {
        const n = Number(a[2]);
        expect(n).toBe(next + announced);
        agent.push(n);
        next = n + 1;
        announced = 0;
      } else if (e && (e[2] ?? '').length === (Number(e[1]) * 1231) % 9000) envoy.push(Number(e[1]));
      else if (notice) announced += Number(notice[1]);
      else if (/^\S+\tinfo\tagent\tdone$/.test(line)) {
        expect(next + announced).toBe(summary.agentLines);
        done = true;
      } else torn.push(line.length > 120 ? `${line.slice(0, 60)}…${line.slice(-60)} (${line.length} chars)` : line);
    }
    expect(torn).toEqual([]);
    expect(done).toBe(true);
    expect(agent.length).toBeGreaterThan(0);
    // Forwarded lines may be dropped (and counted) when stderr backs up, never reordered.
    expect(envoy.length + summary.dropped).toBe(summary.envoyLines);
    expect(envoy.every((n, i) => i === 0 || n > (envoy[i - 1] ?? -1))).toBe(true);
    expect(envoy.length).toBeGreaterThan(0);
  }, 60_000);

  test('a closed fd 2 or a reader gone (EPIPE) loses the lines, never the process', async () => {
    const script = (close: string) => `import fs from 'node:fs';
${close}
const { createLogger } = await import(${JSON.stringify(LOG_JS)});
const log = createLogger().child({ scope: 'dead' });
for (let i = 0; i < 500; i++) log.error({ i, pad: 'x'.repeat(4000) }, 'lost');
fs.writeSync(1, 'alive\\n');
`;
    const closed = await run('closed.mjs', script('fs.closeSync(2);'));
    expect([closed.code, closed.stdout, closed.stderr]).toEqual([0, 'alive\n', '']);
    const file = path.join(tmp, 'epipe.mjs');
    fs.writeFileSync(file, script(''));
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stderr.destroy();
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => void (stdout += d));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect([code, stdout]).toEqual([0, 'alive\n']);
  });

  test('a full non-blocking stderr pipe (EAGAIN) is waited out: nothing thrown, nothing lost, order kept', async () => {
    // The child makes fd 2 non-blocking the way the CLI does (touching process.stderr opens it
    // as a libuv pipe) and fills it until EAGAIN. The parent reads nothing more until the
    // logger's own write has met EAGAIN: fs.writeSync is wrapped to count EAGAINs and to say
    // `full` on stdout at the first one. Then ~400 KiB of lines must all arrive, in order.
    const r = await run(
      'eagain.mjs',
      `import fs from 'node:fs';
void process.stderr;
const flags = Number.parseInt(/flags:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/fdinfo/2', 'utf8'))[1], 8);
const nonblocking = (flags & 0o4000) !== 0;
if (nonblocking) {
  const nl = Buffer.from('\\n');
  for (;;) {
    try { fs.writeSync(2, nl); } catch (err) { if (err.code === 'EAGAIN') break; throw err; }
  }
}
let eagain = 0;
const writeSync = fs.writeSync;
fs.writeSync = function (fd, ...rest) {
  try {
    return writeSync.call(this, fd, ...rest);
  } catch (err) {
    if (err.code === 'EAGAIN' && fd === 2 && eagain++ === 0) writeSync.call(this, 1, 'full\\n');
    throw err;
  }
};
const { createLogger } = await import(${JSON.stringify(LOG_JS)});
const log = createLogger();
const pad = 'x'.repeat(1000);
for (let i = 0; nonblocking && i < 400; i++) log.info({ i }, pad);
if (eagain === 0) writeSync.call(fs, 1, 'full\\n');
writeSync.call(fs, 1, JSON.stringify({ nonblocking, eagain }) + '\\n');
`,
      true,
    );
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout.split('\n')[1] ?? '') as { nonblocking: boolean; eagain: number };
    expect(result.nonblocking).toBe(true);
    expect(result.eagain).toBeGreaterThan(0);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(400);
    lines.forEach((l, i) => expect(l.replace(TIME, 'T')).toBe(`T\tinfo\t${'x'.repeat(1000)}\ti=${i}`));
  }, 20_000);
});
