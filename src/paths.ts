/** Locates files shipped with the package (the built-in bootstrap template). */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The package root: the nearest directory above this module that holds package.json. */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return (root = dir);
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('pilot-agent: cannot find the package root (package.json)');
    dir = parent;
  }
}

export function builtinTemplatePath(): string {
  return path.join(packageRoot(), 'config', 'envoy_bootstrap.json');
}
