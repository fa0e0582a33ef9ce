/**
 * Parses configuration text that is usually JSON (PROXY_CONFIG, annotations, bootstrap
 * overrides) without loading the `yaml` package: JSON.parse first, `yaml` (loaded synchronously
 * on demand) only when the text is not JSON. JSON is a subset of YAML 1.2, so the result is the
 * one `yaml.parse` gives, including its error for duplicate keys when `uniqueKeys` is on (the
 * default): JSON with a repeated key in one object is handed to `yaml` to report.
 */
import { createRequire } from 'node:module';
import type { ParseOptions, DocumentOptions, SchemaOptions, ToJSOptions } from 'yaml';

type YamlOptions = ParseOptions & DocumentOptions & SchemaOptions & ToJSOptions;

let yamlModule: typeof import('yaml') | undefined;
/** The `yaml` package, through its CommonJS entry (synchronous, loaded once). */
export function loadYaml(): typeof import('yaml') {
  return (yamlModule ??= createRequire(import.meta.url)('yaml') as typeof import('yaml'));
}

export function parseJsonOrYaml(text: string, options: YamlOptions = {}): unknown {
  let doc: unknown;
  let json = true;
  try {
    doc = JSON.parse(text);
  } catch {
    json = false;
  }
  if (json && (options.uniqueKeys === false || !hasDuplicateKeys(text))) return doc;
  return loadYaml().parse(text, options);
}

/** Whether some object in (valid) JSON text names a key twice. Linear scan, no allocation per value. */
export function hasDuplicateKeys(text: string): boolean {
  const stack: Array<Set<string> | undefined> = []; // undefined for arrays
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) stack.push(new Set());
    else if (c === 0x5b /* [ */) stack.push(undefined);
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
    else if (c === 0x22 /* " */) {
      const start = i;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i++;
        else if (d === 0x22) break;
      }
      const keys = stack[stack.length - 1];
      if (!keys) continue;
      let j = i + 1;
      while (j < text.length && /\s/.test(text[j]!)) j++;
      if (text[j] !== ':') continue;
      const key = JSON.parse(text.slice(start, i + 1)) as string;
      if (keys.has(key)) return true;
      keys.add(key);
    }
  }
  return false;
}
