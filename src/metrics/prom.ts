/**
 * The prom-client classes the agent uses, loaded from prom-client's own files instead of its
 * index. The index also loads `collectDefaultMetrics` (which pulls in @opentelemetry/api,
 * perf_hooks, v8), the Pushgateway (http/https) and the cluster aggregator: ~9 MiB of RSS the
 * agent never uses (issue 4). They are loaded with `require` rather than `import`: Node's
 * ESM-to-CommonJS bridge (export lexing, a synthetic module per file) costs another ~1 MiB.
 *
 * The classes are the very ones prom-client's index re-exports (same files, same module
 * instances, in Node and under Jest), so a `Registry` from `'prom-client'` and metrics built
 * from here work together. Types come from prom-client's `index.d.ts`; type-only imports of
 * `'prom-client'` elsewhere cost nothing at run time.
 */
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

const require = createRequire(import.meta.url);

export const Registry = require('prom-client/lib/registry.js') as typeof Prom.Registry;
export type Registry<T extends Prom.RegistryContentType = Prom.PrometheusContentType> = Prom.Registry<T>;
export const Counter = require('prom-client/lib/counter.js') as typeof Prom.Counter;
export type Counter<T extends string = string> = Prom.Counter<T>;
export const Gauge = require('prom-client/lib/gauge.js') as typeof Prom.Gauge;
export type Gauge<T extends string = string> = Prom.Gauge<T>;
export const Histogram = require('prom-client/lib/histogram.js') as typeof Prom.Histogram;
export type Histogram<T extends string = string> = Prom.Histogram<T>;
