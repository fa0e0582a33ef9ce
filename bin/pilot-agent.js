#!/usr/bin/env -S node --max-semi-space-size=2 --expose-gc
// Launcher: the compiled CLI lives in dist/ (`npm run build`). It installs the agent's runtime
// tuning, each kept because it measured >= 1 MiB of private memory saved on Node 24
// (docs/ARCHITECTURE.md, "Memory"; scripts/bench/idle.mjs with BENCH_LAUNCHER_FLAGS):
// - `--max-semi-space-size=2`: a young generation of at most 2 MiB per semi-space instead of 16;
// - `--expose-gc`: `gc` for the metrics scrape's minor collections that return socket read
//   buffers (src/metrics/fetch.ts);
// - UTC Date strings without ICU's time-zone tables (src/utc-date.ts), before any Date string.
// Tests run the CLI with exactly these flags (test/support/launcher.ts reads the first line).
import { installUtcDateFormatting } from '../dist/src/utc-date.js';

installUtcDateFormatting();
const { main } = await import('../dist/src/cli.js');
process.exit(await main(process.argv.slice(2)));
