/**
 * PURE parser for the kubelet's downward-API files (`labels`, `annotations`):
 * one `key="value"` line per entry, value quoted like Go's `%q` (SPEC §8).
 */
import { unquote } from '../go/strconv.js';

export type PodInfoParse = { ok: true; values: Map<string, string> } | { ok: false; error: string };

/** Parses a whole file; any value that does not unquote rejects the file. */
export function parsePodInfoFile(text: string): PodInfoParse {
  const values = new Map<string, string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const raw = line.slice(eq + 1);
    const value = unquote(raw);
    if (value === undefined) {
      return { ok: false, error: `line ${i + 1}: value for key ${JSON.stringify(key)} is not a Go-quoted string: ${raw.slice(0, 80)}` };
    }
    values.set(key, value);
  }
  return { ok: true, values };
}
