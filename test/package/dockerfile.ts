/**
 * What the image tests need without a Docker engine: a small Dockerfile parser (stages,
 * global ARG defaults, line continuations, JSON and shell forms), a `.dockerignore` matcher
 * with Docker's rules (last match wins, a pattern also matches everything under a matched
 * directory, `!` re-includes), and `stageRuntime`, which lays out the runtime stage's
 * filesystem in a directory by replaying its COPY and `ln -s` instructions from this
 * checkout: build-context files from the repository, `/app/dist/...` of the build stage from
 * `dist/` (after `npm run build`), `/app/node_modules` of the production-dependency stage from
 * the lockfile's non-dev packages, and the Node binary of the `node` stage as this Node.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface Instruction {
  keyword: string;
  /** The text after the keyword, variables not substituted. */
  raw: string;
  /** `--name=value` options (COPY --from, --chown, …). */
  flags: Record<string, string>;
  /** Arguments after the options: JSON array form or whitespace-split shell form. */
  args: string[];
  line: number;
}

export interface Stage {
  /** Base image after ARG substitution, e.g. `docker.io/istio/proxyv2:1.28.0`. */
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  globalArgs: Map<string, string>;
  stages: Stage[];
}

export function parseDockerfile(text: string): Dockerfile {
  const logical: Array<{ text: string; line: number }> = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((rawLine, i) => {
    const line = rawLine.replace(/\r$/, '');
    if (buf === '' && /^\s*(#|$)/.test(line)) return;
    if (buf !== '' && /^\s*#/.test(line)) return; // comments inside a continuation
    if (buf === '') start = i + 1;
    if (/\\\s*$/.test(line)) {
      buf += `${line.replace(/\\\s*$/, '')} `;
      return;
    }
    buf += line;
    logical.push({ text: buf.trim(), line: start });
    buf = '';
  });
  if (buf.trim() !== '') logical.push({ text: buf.trim(), line: start });

  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  const subst = (s: string) => s.replace(/\$\{(\w+)\}|\$(\w+)/g, (m, a: string | undefined, b: string | undefined) => globalArgs.get((a ?? b) as string) ?? m);
  for (const { text: t, line } of logical) {
    const m = /^(\w+)\s*(.*)$/s.exec(t);
    if (!m) throw new Error(`Dockerfile line ${line}: cannot parse ${t}`);
    const keyword = (m[1] as string).toUpperCase();
    const raw = m[2] as string;
    let rest = raw.trim();
    const flags: Record<string, string> = {};
    for (;;) {
      const f = /^--([\w-]+)(?:=(\S*))?\s*/.exec(rest);
      if (!f) break;
      flags[f[1] as string] = f[2] ?? 'true';
      rest = rest.slice(f[0].length);
    }
    let args: string[];
    if (rest.startsWith('[')) args = JSON.parse(rest) as string[];
    else args = rest === '' ? [] : rest.split(/\s+/);
    const ins: Instruction = { keyword, raw, flags, args, line };
    if (keyword === 'FROM') {
      const as = args.findIndex((a) => a.toUpperCase() === 'AS');
      stages.push({ from: subst(args[0] ?? ''), name: as >= 0 ? args[as + 1] : undefined, instructions: [] });
      continue;
    }
    if (keyword === 'ARG' && stages.length === 0) {
      const [name, def] = (args[0] ?? '').split('=', 2) as [string, string | undefined];
      globalArgs.set(name, def ?? '');
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile line ${line}: ${keyword} before FROM`);
    stage.instructions.push(ins);
  }
  return { globalArgs, stages };
}

/** Docker's `.dockerignore` semantics for one context-relative path. */
export function dockerignoreAllows(patterns: readonly string[], relPath: string): boolean {
  const rules = patterns
    .map((p) => p.trim())
    .filter((p) => p !== '' && !p.startsWith('#'))
    .map((p) => {
      const negate = p.startsWith('!');
      const body = path.posix.normalize((negate ? p.slice(1) : p).trim()).replace(/^\/+/, '').replace(/\/+$/, '');
      return { negate, re: globToRegExp(body) };
    });
  const parts = relPath.split('/').filter(Boolean);
  let excluded = false;
  for (const rule of rules) {
    // A pattern matches the path or any of its parent directories.
    let matched = false;
    for (let i = 1; i <= parts.length && !matched; i++) matched = rule.re.test(parts.slice(0, i).join('/'));
    if (matched) excluded = !rule.negate;
  }
  return !excluded;
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
      if (glob[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export interface CopySource {
  stage: string | undefined;
  from: string;
  to: string;
  line: number;
}

/** Every COPY of a stage as (source, destination) pairs. */
export function copies(stage: Stage): CopySource[] {
  const out: CopySource[] = [];
  for (const ins of stage.instructions) {
    if (ins.keyword !== 'COPY' && ins.keyword !== 'ADD') continue;
    const dest = ins.args.at(-1) as string;
    for (const src of ins.args.slice(0, -1)) out.push({ stage: ins.flags.from, from: src, to: dest, line: ins.line });
  }
  return out;
}

export function workdirOf(stage: Stage): string {
  let wd = '/';
  for (const ins of stage.instructions) if (ins.keyword === 'WORKDIR') wd = path.posix.resolve(wd, ins.args[0] ?? '/');
  return wd;
}

/** The lockfile's production packages (`npm ci --omit=dev`): non-dev entries present in this checkout. */
export function productionPackages(repo: string): string[] {
  const lock = JSON.parse(fs.readFileSync(path.join(repo, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; optional?: boolean; link?: boolean }>;
  };
  const out: string[] = [];
  for (const [key, pkg] of Object.entries(lock.packages)) {
    if (!key.startsWith('node_modules/') || pkg.dev) continue;
    if (!fs.existsSync(path.join(repo, key))) {
      if (pkg.optional) continue; // another platform's optional binary
      throw new Error(`production dependency ${key} is not installed in this checkout (run npm ci)`);
    }
    out.push(key);
  }
  return out;
}

export interface StageOptions {
  repo: string;
  dockerfile: Dockerfile;
  dockerignore: readonly string[];
  /** The directory standing for the image's `/`. */
  root: string;
}

export interface StagedImage {
  entrypoint: string[];
  workdir: string;
  /** Production packages copied into node_modules. */
  packages: string[];
}

/** Replays the last stage's COPY and `ln -s` instructions into `root` (see the file comment). */
export function stageRuntime(o: StageOptions): StagedImage {
  const { dockerfile, repo, root } = o;
  const runtime = dockerfile.stages.at(-1) as Stage;
  const byName = new Map(dockerfile.stages.filter((s) => s.name).map((s) => [s.name as string, s]));
  const inRoot = (p: string) => path.join(root, p);
  let packages: string[] = [];
  for (const c of copies(runtime)) {
    const dest = inRoot(c.to);
    if (c.stage === undefined) {
      const src = path.join(repo, c.from);
      if (!dockerignoreAllows(o.dockerignore, c.from)) throw new Error(`COPY ${c.from} (line ${c.line}) is excluded by .dockerignore`);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      fs.cpSync(src, dest, { recursive: true });
      continue;
    }
    const from = byName.get(c.stage);
    if (!from || from.instructions.length === 0) {
      // An external image (the `node` stage is an alias of node:24): only its Node binary is used.
      if (c.from !== '/usr/local/bin/node') throw new Error(`COPY --from=${c.stage} ${c.from}: cannot stage files of an external image`);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      fs.symlinkSync(process.execPath, dest);
      continue;
    }
    const wd = workdirOf(from);
    const rel = path.posix.relative(wd, c.from);
    if (rel.startsWith('..')) throw new Error(`COPY --from=${c.stage} ${c.from}: outside the stage's WORKDIR ${wd}`);
    if (rel === 'node_modules') {
      const installs = from.instructions.some((i) => i.keyword === 'RUN' && /npm ci\b.*--omit=dev/.test(i.raw));
      if (!installs) throw new Error(`stage ${c.stage} does not run npm ci --omit=dev`);
      packages = productionPackages(repo);
      for (const key of packages) {
        const target = path.join(dest, path.relative('node_modules', key));
        fs.mkdirSync(path.dirname(target), { recursive: true });
        // Nested node_modules are listed (and copied) as packages of their own.
        fs.cpSync(path.join(repo, key), target, {
          recursive: true,
          verbatimSymlinks: true,
          filter: (s) => s === path.join(repo, key) || path.relative(path.join(repo, key), s).split(path.sep)[0] !== 'node_modules',
        });
      }
      continue;
    }
    const src = path.join(repo, rel);
    if (!fs.existsSync(src)) throw new Error(`COPY --from=${c.stage} ${c.from}: ${rel} does not exist (npm run build first)`);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.cpSync(src, dest, { recursive: true });
  }
  for (const ins of runtime.instructions) {
    if (ins.keyword !== 'RUN') continue;
    for (const m of ins.raw.matchAll(/\bln\s+-s[f]*\s+(\S+)\s+(\S+)/g)) {
      const link = inRoot(m[2] as string);
      fs.mkdirSync(path.dirname(link), { recursive: true });
      fs.rmSync(link, { force: true });
      fs.symlinkSync(m[1] as string, link);
    }
    for (const m of ins.raw.matchAll(/\bchmod\s+(0?[0-7]{3,4})\s+(\S+)/g)) fs.chmodSync(inRoot(m[2] as string), parseInt(m[1] as string, 8));
  }
  const entry = runtime.instructions.filter((i) => i.keyword === 'ENTRYPOINT').at(-1);
  return { entrypoint: entry?.args ?? [], workdir: workdirOf(runtime), packages };
}
