/**
 * PURE family claims (README "The duplicate-family rule"): what a finished source emitted,
 * and the questions a later source asks of all earlier ones — does this family collide, who
 * owns this sample name, would anything of a prepared source collide.
 */
import { ALL_SUFFIXES, suffixesFor, type FamilyType } from './exposition.js';

/** Family type recorded for a name; `null` = a family seen only through HELP/UNIT so far. */
export type FamilyEntry = FamilyType | null;

/** What a finished source emitted, claimed for the sources after it. */
export interface Claims {
  families: Map<string, FamilyEntry>;
  samples: Set<string>;
  dropped: Set<string>;
  verbatim: boolean;
  /**
   * Families checked against earlier sources with every suffix (those with a HELP or UNIT
   * line, or a TYPE line of an unknown type); the others were checked with their type's.
   */
  wide: Set<string>;
}

const ALL_SUFFIXES_MASK = (1 << ALL_SUFFIXES.length) - 1;

/** Bitmask over ALL_SUFFIXES of the suffixes a family of `type` may use (all when unknown). */
function suffixMask(type: FamilyType | undefined): number {
  let mask = 0;
  for (const sfx of suffixesFor(type)) mask |= 1 << ALL_SUFFIXES.indexOf(sfx);
  return mask;
}

/** The family in `families` that a sample name belongs to (itself, or its base for a suffix its type allows). */
export function familyOf(families: ReadonlyMap<string, FamilyEntry>, name: string): string | undefined {
  if (families.has(name)) return name;
  for (const sfx of suffixesFor(undefined)) {
    if (!name.endsWith(sfx)) continue;
    const base = name.slice(0, -sfx.length);
    const type = families.get(base);
    if (type === undefined) continue;
    if (type === null || suffixesFor(type).includes(sfx)) return base;
  }
  return undefined;
}

/** The names claimed by the finished sources of one scrape. */
export class EarlierClaims {
  /** Family names (from descriptors) and sample names. */
  private readonly families = new Map<string, FamilyEntry>();
  private readonly samples = new Set<string>();
  /** For each earlier name `<base><suffix>`: base → bitmask of the suffixes seen. */
  private readonly bases = new Map<string, number>();

  /** Adds a finished source's claims (its dropped families excluded). */
  add(claims: Claims): void {
    for (const [name, type] of claims.families) {
      if (claims.dropped.has(name)) continue;
      this.families.set(name, type);
      this.noteBase(name);
      // Verbatim sources did not record their sample names: claim the ones the type allows.
      if (claims.verbatim && type !== null) {
        for (const sfx of suffixesFor(type)) claims.samples.add(name + sfx);
      }
    }
    for (const name of claims.samples) {
      this.samples.add(name);
      this.noteBase(name);
    }
  }

  /** Would family `name` of `type` collide with a name an earlier source emitted? */
  conflictsWithFamily(name: string, type: FamilyType | undefined): boolean {
    if (this.families.has(name) || this.samples.has(name)) return true;
    const seen = this.bases.get(name);
    return seen !== undefined && (seen & suffixMask(type)) !== 0;
  }

  /** The earlier family (or sample name) that already owns this sample name, if any. */
  ownerOf(name: string): string | undefined {
    return familyOf(this.families, name) ?? (this.samples.has(name) ? name : undefined);
  }

  /**
   * Would the line-by-line path drop anything from a source with these claims? The same
   * predicates as `conflictsWithFamily` (per family) and `ownerOf` (per sample), enumerated
   * from the earlier names' side: the cost does not grow with the later source.
   */
  collidesWith(later: Claims): boolean {
    const { families, samples, wide } = later;
    for (const [name, type] of this.families) {
      if (families.has(name) || samples.has(name)) return true;
      for (const sfx of type === null ? ALL_SUFFIXES : suffixesFor(type)) if (samples.has(name + sfx)) return true;
    }
    for (const name of this.samples) if (families.has(name) || samples.has(name)) return true;
    for (const [base, bits] of this.bases) {
      const type = families.get(base);
      if (type === undefined) continue;
      const mask = wide.has(base) || type === null ? ALL_SUFFIXES_MASK : suffixMask(type);
      if ((bits & mask) !== 0) return true;
    }
    return false;
  }

  /**
   * For verbatim mode: for each first byte, the prefixes (first bytes, at most 8) of the
   * claimed names that start with it. A sample colliding with an earlier name starts with one
   * of them (it matters for a sample that precedes its dropped family's `# TYPE`, which the
   * real istio-proxy capture has).
   */
  prefixesByFirstByte(): (Buffer[] | undefined)[] {
    const prefixes = new Set<string>();
    const add = (name: string) => {
      const bytes = Buffer.from(name, 'utf8');
      prefixes.add(bytes.subarray(0, Math.min(bytes.length, 8)).toString('latin1'));
    };
    for (const name of this.families.keys()) add(name);
    for (const name of this.samples) add(name);
    const byFirst: (Buffer[] | undefined)[] = [];
    // A prefix that starts with another prefix is covered by it.
    const kept: string[] = [];
    for (const p of [...prefixes].sort((a, b) => a.length - b.length)) {
      if (kept.some((k) => p.startsWith(k))) continue;
      kept.push(p);
      (byFirst[p.charCodeAt(0)] ??= []).push(Buffer.from(p, 'latin1'));
    }
    return byFirst;
  }

  private noteBase(name: string): void {
    for (let i = 0; i < ALL_SUFFIXES.length; i++) {
      const sfx = ALL_SUFFIXES[i] as string;
      if (!name.endsWith(sfx)) continue;
      const base = name.slice(0, -sfx.length);
      this.bases.set(base, (this.bases.get(base) ?? 0) | (1 << i));
    }
  }
}
