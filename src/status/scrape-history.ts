/**
 * The last merged scrapes (SPEC §6.2), for the status page: when, how long, how many bytes,
 * each source's outcome and error, and the metric families dropped as duplicates. Recorded by
 * the `/stats/prometheus` handler after each scrape (off the scrape's own path: a push into a
 * bounded ring), read by `snapshot()`.
 */
import type { ScrapeReport } from '../metrics/scrape.js';
import { Ring, isoTime } from './registry.js';

export interface ScrapeRecord {
  at: number;
  durationMs: number;
  bytes: number;
  report: ScrapeReport | undefined;
  /** The scrape itself failed (the client went away mid-body). */
  error?: string;
}

export class ScrapeHistory {
  private readonly ring = new Ring<ScrapeRecord>(10);
  private total = 0;
  private readonly duplicateTotals: Record<string, number> = {};

  add(r: ScrapeRecord): void {
    this.total++;
    this.ring.push(r);
    for (const [source, names] of Object.entries(r.report?.duplicates ?? {})) this.duplicateTotals[source] = (this.duplicateTotals[source] ?? 0) + (names?.length ?? 0);
  }

  snapshot(): Record<string, unknown> {
    return {
      scrapes: this.total,
      duplicateFamiliesDropped: { ...this.duplicateTotals },
      recent: this.ring
        .toArray()
        .reverse()
        .map((r) => ({
          at: isoTime(r.at),
          durationMs: Math.round(r.durationMs * 100) / 100,
          bytes: r.bytes,
          sources: r.report ? { ...r.report.sources } : {},
          errors: r.report ? { ...r.report.errors } : {},
          duplicates: r.report ? Object.fromEntries(Object.entries(r.report.duplicates).map(([k, v]) => [k, (v ?? []).slice(0, 20)])) : {},
          error: r.error ?? null,
        })),
    };
  }
}
