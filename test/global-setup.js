// Builds dist/ once before the suite: integration tests spawn the real CLI
// (bin/pilot-agent.js) and the Envoy double as processes, which run compiled JS.
// The build also type-checks; a type error fails the run.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export default function globalSetup() {
  if (process.env.PILOT_AGENT_SKIP_BUILD === '1') return;
  const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
  const tsc = path.join(root, 'node_modules', '.bin', 'tsc');
  try {
    execFileSync(tsc, ['-p', 'tsconfig.build.json'], { cwd: root, stdio: 'pipe' });
  } catch (err) {
    const out = `${err.stdout ?? ''}${err.stderr ?? ''}`;
    throw new Error(`tsc -p tsconfig.build.json failed:\n${out}`);
  }
}
