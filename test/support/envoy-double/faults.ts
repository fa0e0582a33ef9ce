/**
 * Faults and test knobs: read once from `ENVOY_DOUBLE_*` env at start, then overlaid by the
 * optional JSON control file (`ENVOY_DOUBLE_CONTROL`), which the double re-reads whenever it
 * changes. A key present in the control file wins over the env value; a key removed from the
 * file falls back to the env value. README.md lists every knob.
 */
export interface Knobs {
  liveDelayMs: number;
  workersDelayMs: number;
  neverLive: boolean;
  fakeXds: boolean;
  /** Reported state override (PRE_INITIALIZING, INITIALIZING, LIVE, DRAINING), or undefined. */
  state: string | undefined;
  adminDelayMs: number;
  adminHang: boolean;
  promBytes: number;
  promFixture: string;
  cdsRejected: number;
  ldsRejected: number;
  slowDrain: boolean;
  crashAfterMs: number;
  exitCode: number;
  exitSignal: string;
  stderrOnCrash: string[];
  sigtermExitCode: number;
  ignoreSigterm: boolean;
  statsFlushMs: number;
  ignoreStatsMatcher: boolean;
  parentWatch: boolean;
  /** Hot restart: never terminate the parent (to test the agent's backstop). */
  keepParent: boolean;
}

type Env = Record<string, string | undefined>;

const num = (v: unknown, dflt: number): number => {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return dflt;
};
const bool = (v: unknown, dflt: boolean): boolean => {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && v !== '') return v === '1' || v.toLowerCase() === 'true';
  return dflt;
};
const lines = (v: unknown): string[] => {
  if (Array.isArray(v)) return v.map(String);
  if (typeof v === 'string' && v !== '') return v.split('\n');
  return [];
};

export function knobsFromEnv(env: Env): Knobs {
  const e = (k: string): string | undefined => env[`ENVOY_DOUBLE_${k}`];
  return {
    liveDelayMs: num(e('LIVE_DELAY_MS'), 0),
    workersDelayMs: num(e('WORKERS_DELAY_MS'), 0),
    neverLive: bool(e('NEVER_LIVE'), false),
    fakeXds: bool(e('FAKE_XDS'), false),
    state: e('STATE_OVERRIDE') || undefined,
    adminDelayMs: num(e('ADMIN_DELAY_MS'), 0),
    adminHang: bool(e('ADMIN_HANG'), false),
    promBytes: num(e('PROM_BYTES'), 0),
    promFixture: e('PROM_FIXTURE') ?? '',
    cdsRejected: num(e('CDS_REJECTED'), 0),
    ldsRejected: num(e('LDS_REJECTED'), 0),
    slowDrain: bool(e('SLOW_DRAIN'), false),
    crashAfterMs: num(e('CRASH_AFTER_MS'), -1),
    exitCode: num(e('EXIT_CODE'), 1),
    exitSignal: e('EXIT_SIGNAL') ?? '',
    stderrOnCrash: lines(e('STDERR_ON_CRASH')),
    sigtermExitCode: num(e('SIGTERM_EXIT_CODE'), 0),
    ignoreSigterm: bool(e('IGNORE_SIGTERM'), false),
    statsFlushMs: num(e('STATS_FLUSH_MS'), 0),
    ignoreStatsMatcher: bool(e('IGNORE_STATS_MATCHER'), false),
    parentWatch: bool(e('PARENT_WATCH'), true),
    keepParent: bool(e('KEEP_PARENT'), false),
  };
}

/** Control-file keys (camelCase, as in `Knobs`) overlaid on the env knobs; unknown keys are ignored. */
export function overlayControl(base: Knobs, control: Record<string, unknown>): Knobs {
  const k = { ...base };
  const has = (key: keyof Knobs): boolean => Object.prototype.hasOwnProperty.call(control, key);
  for (const key of Object.keys(base) as Array<keyof Knobs>) {
    if (!has(key)) continue;
    const v = control[key];
    const cur = base[key];
    if (key === 'state') k.state = typeof v === 'string' && v !== '' ? v : undefined;
    else if (key === 'stderrOnCrash') k.stderrOnCrash = lines(v);
    else if (typeof cur === 'number') (k as Record<string, unknown>)[key] = num(v, cur);
    else if (typeof cur === 'boolean') (k as Record<string, unknown>)[key] = bool(v, cur);
    else if (typeof cur === 'string') (k as Record<string, unknown>)[key] = typeof v === 'string' ? v : cur;
  }
  return k;
}
