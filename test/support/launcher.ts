/**
 * The launcher's node flags, read from the `#!/usr/bin/env -S node …` line of
 * bin/pilot-agent.js, so that tests which run the CLI as `node <flags> bin/pilot-agent.js …`
 * give it exactly the flags the image's exec of the launcher does.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const LAUNCHER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'pilot-agent.js');

/** The flags of `line` (a launcher's first line); throws naming the expected form otherwise. */
export function parseLauncherFlags(line: string): string[] {
  const m = /^#!\/usr\/bin\/env -S node((?: +--[a-z0-9-]+(?:=\S+)?)*) *$/.exec(line);
  if (!m) throw new Error(`${LAUNCHER}: first line ${JSON.stringify(line)} is not of the form "#!/usr/bin/env -S node [--flag[=value] …]"`);
  return (m[1] as string).split(' ').filter(Boolean);
}

export const LAUNCHER_NODE_FLAGS: readonly string[] = parseLauncherFlags(fs.readFileSync(LAUNCHER, 'utf8').split('\n')[0] as string);

/** argv for `process.execPath` that runs the launcher with its flags: `<flags> bin/pilot-agent.js <args>`. */
export function launcherArgv(args: readonly string[]): string[] {
  return [...LAUNCHER_NODE_FLAGS, LAUNCHER, ...args];
}
