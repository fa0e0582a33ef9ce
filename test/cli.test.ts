import { describe, expect, test } from '@jest/globals';
import { PassThrough } from 'node:stream';
import { main } from '../src/cli.js';

function capture() {
  const out = new PassThrough();
  const chunks: string[] = [];
  out.on('data', (c: Buffer) => chunks.push(c.toString()));
  return { stream: out, text: () => chunks.join('') };
}

describe('cli', () => {
  test('unknown command exits 255 and names it', async () => {
    const err = capture();
    const code = await main(['frobnicate'], { stderr: err.stream, stdout: capture().stream, env: {} });
    expect(code).toBe(255);
    expect(err.text()).toContain('unknown command "frobnicate"');
  });
});
