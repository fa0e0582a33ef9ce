#!/usr/bin/env -S node --max-semi-space-size=2 --expose-gc
// Launcher: the compiled CLI lives in dist/ (`npm run build`). The node flags on the first
// line are the agent's memory tuning (docs/ARCHITECTURE.md, "Memory"): a young generation of
// at most 2 MiB per semi-space instead of 16, and `gc` exposed so the metrics scrape can ask
// for a minor collection that returns socket read buffers (src/metrics/fetch.ts).
import { main } from '../dist/src/cli.js';

process.exit(await main(process.argv.slice(2)));
