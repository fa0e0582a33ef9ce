/**
 * A strict exposition checker for tests, with the rules that real parsers enforce and a
 * blind concatenation breaks: at most one `# TYPE` and one `# HELP` per family, no `# TYPE`
 * after samples of that family (client_golang's text parser), every sample line
 * well-formed, and for OpenMetrics exactly one `# EOF`, as the last line.
 */
import { ALL_SUFFIXES, isValidExpositionLine, parseFamilyType, suffixesFor, type FamilyType } from '../../src/metrics/exposition.js';

export interface ParsedExposition {
  families: Map<string, { type: FamilyType | undefined; help: boolean; samples: number }>;
  samples: number;
}

export function parseExposition(body: string, openMetrics: boolean): ParsedExposition {
  const errors: string[] = [];
  const families = new Map<string, { type: FamilyType | undefined; help: boolean; samples: number }>();
  const sampleNames = new Set<string>();
  let samples = 0;
  const lines = body.split('\n');
  if (!body.endsWith('\n')) errors.push('body does not end with a newline');
  else lines.pop();
  lines.forEach((line, i) => {
    const at = `line ${i + 1} ${JSON.stringify(line.slice(0, 100))}`;
    if (!isValidExpositionLine(line)) return errors.push(`${at}: invalid line`);
    if (line === '') return openMetrics ? errors.push(`${at}: empty line in OpenMetrics`) : undefined;
    if (line === '# EOF') {
      if (!openMetrics) errors.push(`${at}: # EOF in a text exposition`);
      else if (i !== lines.length - 1) errors.push(`${at}: # EOF before the end`);
      return;
    }
    const d = /^# (TYPE|HELP|UNIT) (\S+)(?: (.*))?$/.exec(line);
    if (d) {
      const name = d[2] as string;
      const fam = families.get(name) ?? { type: undefined, help: false, samples: 0 };
      families.set(name, fam);
      if (d[1] === 'TYPE') {
        if (fam.type !== undefined) errors.push(`${at}: second TYPE line for ${name}`);
        if (fam.samples > 0 || sampleNames.has(name)) errors.push(`${at}: TYPE for ${name} after its samples`);
        fam.type = parseFamilyType((d[3] ?? '').trim());
        if (fam.type === undefined) errors.push(`${at}: unknown type ${d[3]}`);
        if (openMetrics && fam.type === 'untyped') errors.push(`${at}: untyped is not an OpenMetrics type`);
      } else if (d[1] === 'HELP') {
        if (fam.help) errors.push(`${at}: second HELP line for ${name}`);
        fam.help = true;
      }
      return;
    }
    if (line.startsWith('#')) {
      if (openMetrics) errors.push(`${at}: free-form comment in OpenMetrics`);
      return;
    }
    samples++;
    const name = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line)?.[1] as string;
    sampleNames.add(name);
    const direct = families.get(name);
    if (direct) direct.samples++;
    else {
      for (const sfx of ALL_SUFFIXES) {
        const base = name.endsWith(sfx) ? families.get(name.slice(0, -sfx.length)) : undefined;
        if (base && (base.type === undefined || suffixesFor(base.type).includes(sfx))) {
          base.samples++;
          break;
        }
      }
    }
  });
  if (openMetrics && lines[lines.length - 1] !== '# EOF') errors.push('OpenMetrics body does not end with # EOF');
  if (errors.length > 0) throw new Error(`invalid exposition:\n${errors.slice(0, 20).join('\n')}`);
  return { families, samples };
}
