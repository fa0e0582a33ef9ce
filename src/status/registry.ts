/**
 * The facts behind the status page and `GET /status` (issue 17): a list of snapshot providers,
 * each `{ name, snapshot() }` returning a plain JSON-safe object (facts only: names, counts,
 * times, errors — never a private key, a token or a certificate body). Providers are
 * registered once, in start-up order, by the composition root (src/agent/status.ts); the SDS
 * file secrets and DNS components add theirs the same way. `snapshot()` calls every provider
 * synchronously; a provider that throws is reported as `{ error }` under its name, never
 * failing the document. The document's shape is `status.schema.json` (version below).
 */
export const STATUS_SCHEMA_VERSION = 1;

export interface StatusProvider {
  /** Section name in the document (`envoy`, `readiness`, …); unique. */
  readonly name: string;
  snapshot(): unknown;
}

export interface StatusDocument {
  schemaVersion: number;
  /** When the document was built (ISO 8601, UTC). */
  generatedAt: string;
  sections: Record<string, unknown>;
}

export class StatusRegistry {
  private readonly providers: StatusProvider[] = [];

  /** Adds a provider; a second provider of the same name is a bug and throws. */
  register(provider: StatusProvider): void {
    if (this.providers.some((p) => p.name === provider.name)) throw new Error(`status provider ${provider.name} is already registered`);
    this.providers.push(provider);
  }

  names(): string[] {
    return this.providers.map((p) => p.name);
  }

  snapshot(now: Date = new Date()): StatusDocument {
    const sections: Record<string, unknown> = {};
    for (const p of this.providers) {
      try {
        sections[p.name] = p.snapshot();
      } catch (err) {
        sections[p.name] = { error: `snapshot failed: ${err instanceof Error ? err.message : String(err)}` };
      }
    }
    return { schemaVersion: STATUS_SCHEMA_VERSION, generatedAt: now.toISOString(), sections };
  }
}

/** A bounded record of recent events, oldest first (a ring: the oldest entry is dropped). */
export class Ring<T> {
  private readonly items: T[] = [];

  constructor(readonly capacity: number) {}

  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.capacity) this.items.shift();
  }

  last(): T | undefined {
    return this.items[this.items.length - 1];
  }

  toArray(): T[] {
    return [...this.items];
  }
}

/** Wall-clock time of a `Date.now()` value as ISO 8601 (UTC), or null. */
export function isoTime(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}
