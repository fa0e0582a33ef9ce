/**
 * Run by test/log.test.ts: the agent's two writers of fd 2 at once. It forwards the stderr of a
 * noisy process through EnvoyProcess (src/envoy/process.ts → process.stderr, as the agent
 * forwards Envoy's) while logging heavily through the default logger; lines of both kinds are
 * often longer than PIPE_BUF. Once the noisy process has exited and stderr has drained it logs
 * `done`. On stdout: `{"agentLines":n,"envoyLines":n,"dropped":n,"fifo":bool}` (dropped: forwarded lines;
 * fifo: fd 2 is a pipe).
 *
 * Agent line i: `A<i> ` + 'x' × agentPad(i); forwarded line i: `E<i> ` + 'e' × envoyPad(i).
 */
import fs from 'node:fs';
import { EnvoyProcess } from '../../src/envoy/process.js';
import { createLogger } from '../../src/log.js';

const agentPad = (i: number): number => (i * 997) % 9000;

// The noisy process writes its lines in pieces of arbitrary size, as a real process does.
const NOISY = `
const fs = require('node:fs');
const n = Number(process.argv[1]);
let out = '';
for (let i = 0; i < n; i++) out += 'E' + i + ' ' + 'e'.repeat((i * 1231) % 9000) + '\\n';
const buf = Buffer.from(out);
for (let at = 0, k = 1; at < buf.length; k++) {
  const end = Math.min(buf.length, at + 1 + ((k * 7919) % 12000));
  at += fs.writeSync(2, buf.subarray(at, end));
}
`;

async function main(): Promise<void> {
  const [agentMin = 2000, envoyLines = 2000] = process.argv.slice(2).map(Number);
  const log = createLogger().child({ scope: 'agent' });
  let dropped = 0;
  const proc = await EnvoyProcess.spawn({
    binaryPath: process.execPath,
    args: ['-e', NOISY, String(envoyLines)],
    cwd: process.cwd(),
    env: process.env,
    onDroppedLine: () => dropped++,
  });
  let exited = false;
  void proc.exited.then(() => (exited = true));
  let i = 0;
  while (!exited || i < agentMin) {
    for (let k = 0; k < 10; k++, i++) log.info(`A${i} ${'x'.repeat(agentPad(i))}`);
    await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => process.stderr.write('', r));
  log.info('done');
  process.stdout.write(`${JSON.stringify({ agentLines: i, envoyLines, dropped, fifo: fs.fstatSync(2).isFIFO() })}\n`);
}

await main();
