#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (`npm run build`).
import { main } from '../dist/src/cli.js';

process.exit(await main(process.argv.slice(2)));
