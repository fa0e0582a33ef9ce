import { describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as yamlParse } from 'yaml';
import { hasDuplicateKeys, parseJsonOrYaml } from '../../src/config/json-or-yaml.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('parseJsonOrYaml: JSON fast path, same results as yaml.parse', () => {
  const samples = [
    '{"binaryPath":"/usr/local/bin/envoy","proxyMetadata":{"A":"1"},"concurrency":2,"x":[1,2.5,true,null,"\\u00e9\\n"]}',
    ' {"a": {"b": [ {"c": 1e3} ]}} ',
    '123',
    'null',
    'binaryPath: /x\nconcurrency: 2\n',
    '',
    '# only a comment\n',
    '{a: 1}',
  ];
  test.each(samples)('%j', (text) => {
    expect(parseJsonOrYaml(text)).toEqual(yamlParse(text));
    expect(parseJsonOrYaml(text, { schema: 'core', uniqueKeys: false })).toEqual(yamlParse(text, { schema: 'core', uniqueKeys: false }));
  });

  test('duplicate keys: yaml reports them unless uniqueKeys is off (last one wins, as in yaml)', () => {
    const dup = '{"a": 1, "b": {"a": 2}, "\\u0061": 3}';
    expect(hasDuplicateKeys(dup)).toBe(true);
    expect(hasDuplicateKeys('{"a": 1, "b": {"a": 2}, "c": ["a", "a"]}')).toBe(false);
    expect(() => yamlParse(dup)).toThrow();
    expect(() => parseJsonOrYaml(dup)).toThrow(/unique/i);
    expect(parseJsonOrYaml(dup, { uniqueKeys: false })).toEqual(yamlParse(dup, { uniqueKeys: false }));
  });

  test('a real process parsing JSON never loads the yaml package; YAML text does', () => {
    const mod = path.join(repo, 'dist', 'src', 'config', 'json-or-yaml.js');
    const script = `
      import { createRequire } from 'node:module';
      const { parseJsonOrYaml } = await import(${JSON.stringify(mod)});
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/yaml/'));
      const out = [];
      parseJsonOrYaml('{"a": [1, 2]}');
      out.push(loaded());
      parseJsonOrYaml('a: [1, 2]');
      out.push(loaded());
      console.log(JSON.stringify(out));`;
    const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repo, encoding: 'utf8' });
    expect(JSON.parse(stdout)).toEqual([false, true]);
  });
});
