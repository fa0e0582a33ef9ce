/**
 * PURE parsing of live `iptables-save` text for cleanup: tokenising a rule line, and the
 * deletes for jumps into Istio chains that the cleanup plan does not know about.
 */
import { BUILTIN_CHAINS, ISTIO_CHAINS, type HostCommand } from './builder.js';

/** Splits one iptables-save rule line into arguments (double quotes group, as the shell would). */
export function tokenizeSaveLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inQuote = false;
  let has = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (inQuote) {
      if (c === '\\' && i + 1 < line.length) {
        cur += line[++i];
      } else if (c === '"') {
        inQuote = false;
      } else {
        cur += c;
      }
    } else if (c === '"') {
      inQuote = true;
      has = true;
    } else if (c === ' ' || c === '\t') {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (has) out.push(cur);
  return out;
}

/**
 * From `iptables-save` output: a delete for every rule in a built-in chain that jumps (or
 * goes) to an Istio chain. These are the jumps a differently-flagged run created (e.g. `-k`),
 * which would otherwise keep the chains from being deleted. Foreign rules never match.
 */
export function sweepJumps(bin: 'iptables' | 'ip6tables', saveText: string): HostCommand[] {
  const out: HostCommand[] = [];
  let table = '';
  for (const line of saveText.split('\n')) {
    if (line.startsWith('*')) {
      table = line.slice(1).trim();
      continue;
    }
    if (!line.startsWith('-A ')) continue;
    const tokens = tokenizeSaveLine(line);
    const chain = tokens[1] ?? '';
    if (!BUILTIN_CHAINS.has(chain)) continue;
    const jumpAt = Math.max(tokens.lastIndexOf('-j'), tokens.lastIndexOf('-g'));
    const target = jumpAt >= 0 ? tokens[jumpAt + 1] : undefined;
    if (target === undefined || !ISTIO_CHAINS.has(target)) continue;
    out.push({ cmd: bin, args: ['-t', table, '-D', ...tokens.slice(1)], onFailure: 'ignore', quiet: true });
  }
  return out;
}
