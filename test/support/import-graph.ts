/**
 * The static import graph of a source tree: which module loads which at run time. `import type`
 * and `export type` are compile-time only and are left out, and so are dynamic `import()` calls
 * (they load lazily, after every static import has finished evaluating). Specifiers that are not
 * relative (packages, `node:` builtins) are left out too.
 */
import fs from 'node:fs';
import path from 'node:path';

const STATIC_IMPORT = /^\s*(?:import|export)\s+(type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]/gm;

export type ImportGraph = Map<string, string[]>;

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listTs(p));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Runtime imports between the `.ts` files under `root`, keyed by path relative to `root`. */
export function importGraph(root: string): ImportGraph {
  const graph: ImportGraph = new Map();
  for (const file of listTs(root)) {
    const text = fs.readFileSync(file, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(STATIC_IMPORT)) {
      const [, typeOnly, spec] = m;
      if (typeOnly || !spec || !spec.startsWith('.')) continue;
      const resolved = path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts'));
      deps.push(path.relative(root, resolved));
    }
    graph.set(path.relative(root, file), deps);
  }
  return graph;
}

/** Every cycle found by a depth-first walk, each as the list of modules from its first repeat. */
export function findCycles(graph: ImportGraph): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'active' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, 'active');
    stack.push(node);
    for (const dep of graph.get(node) ?? []) {
      const s = state.get(dep);
      if (s === 'active') cycles.push([...stack.slice(stack.indexOf(dep)), dep]);
      else if (s === undefined && graph.has(dep)) visit(dep);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return cycles;
}
