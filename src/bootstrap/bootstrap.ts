/**
 * The bootstrap shell (SPEC §4): picks the template (ISTIO_BOOTSTRAP > --templateFile >
 * built-in), parses it once, and renders it into `<configPath>/envoy-rev.json` before
 * every Envoy start; removes it after Envoy exits. A ProxyConfig `customConfigFile`
 * replaces all of this and is never written or deleted.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseJsonOrYaml } from '../config/json-or-yaml.js';
import type { AgentConfig } from '../config/load.js';
import { AgentError, ConfigError } from '../errors.js';
import { builtinTemplatePath } from '../paths.js';
import { templateData } from './data.js';
import { parseTemplate, type Template } from './gotemplate/index.js';
import type { NodeIdentity } from './node.js';

export const SPIFFE_UDS_DIR = './var/run/secrets/workload-spiffe-uds';
/** Istio's `FileCredentialNameSocketPath`. */
export const FILE_CREDENTIAL_SOCKET = './var/run/secrets/credential-uds/files-socket';

export interface SdsSocketChoice {
  /** As written into the bootstrap (relative to cwd, like Istio's). */
  path: string;
  /** Absolute path the SDS server binds. */
  absolute: string;
  reason: string;
}

/**
 * SPEC §4: `./var/run/secrets/workload-spiffe-uds/socket` when that directory exists and is
 * writable (current Istio), else `<configPath>/SDS` (the 1.6 location, inside the istio-envoy emptyDir).
 */
export function chooseSdsSocket(config: AgentConfig, externalSds = false): SdsSocketChoice {
  if (externalSds) {
    const p = `${SPIFFE_UDS_DIR}/socket`;
    return { path: p, absolute: path.resolve(config.cwd, p), reason: `a healthy external SDS server listens on ${p}` };
  }
  const dir = path.resolve(config.cwd, SPIFFE_UDS_DIR);
  try {
    if (fs.statSync(dir).isDirectory()) {
      fs.accessSync(dir, fs.constants.W_OK);
      return { path: `${SPIFFE_UDS_DIR}/socket`, absolute: path.join(dir, 'socket'), reason: `${SPIFFE_UDS_DIR} exists and is writable` };
    }
  } catch {
    // fall through to the 1.6 location
  }
  const p = `${config.proxy.configPath.replace(/\/+$/, '')}/SDS`;
  return { path: p, absolute: path.resolve(config.cwd, p), reason: `${SPIFFE_UDS_DIR} is missing or not writable` };
}

export interface TemplateChoice {
  path: string;
  source: 'ISTIO_BOOTSTRAP' | '--templateFile' | 'built-in';
}

export function chooseTemplate(config: AgentConfig): TemplateChoice {
  const env = config.env.ISTIO_BOOTSTRAP;
  if (env !== '') return { path: path.resolve(config.cwd, env), source: 'ISTIO_BOOTSTRAP' };
  if (config.templateFile !== '') return { path: path.resolve(config.cwd, config.templateFile), source: '--templateFile' };
  return { path: builtinTemplatePath(), source: 'built-in' };
}

export function loadTemplate(choice: TemplateChoice): Template {
  let text: string;
  try {
    text = fs.readFileSync(choice.path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${choice.source}: cannot read bootstrap template ${choice.path}: ${(err as Error).message}`, { cause: err });
  }
  return parseTemplate(text, path.basename(choice.path));
}

/**
 * ISTIO_BOOTSTRAP_OVERRIDE → the `--config-yaml` value (SPEC §5): `$(HOST_IP)` substituted,
 * YAML converted to JSON. Returns an error message instead when the file is unusable
 * (the caller logs it and leaves the flag out).
 */
export function readBootstrapOverride(config: AgentConfig): { json?: string; error?: string } {
  const file = config.env.ISTIO_BOOTSTRAP_OVERRIDE;
  if (file === '') return {};
  const abs = path.resolve(config.cwd, file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (err) {
    return { error: `ISTIO_BOOTSTRAP_OVERRIDE: cannot read ${abs}: ${(err as Error).message}` };
  }
  const hostIp = config.pod.hostIp.includes(':') ? `[${config.pod.hostIp}]` : config.pod.hostIp;
  text = text.split('$(HOST_IP)').join(hostIp);
  try {
    const doc: unknown = parseJsonOrYaml(text);
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
      return { error: `ISTIO_BOOTSTRAP_OVERRIDE: ${abs}: expected a YAML/JSON object` };
    }
    return { json: JSON.stringify(doc) };
  } catch (err) {
    return { error: `ISTIO_BOOTSTRAP_OVERRIDE: ${abs}: not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}` };
  }
}

export interface BootstrapWriterOptions {
  /** A healthy external SDS server owns the workload socket (issue 14): `sds-grpc` points at it, `sds-files-grpc` at the agent's file-credential socket. */
  externalSds?: boolean;
}

/** Renders and writes the bootstrap; one instance per agent, parsed template reused. */
export class BootstrapWriter {
  readonly sds: SdsSocketChoice;
  /** The socket the agent's SDS server binds for file secrets when an external SDS server owns `sds`. */
  readonly filesSds: SdsSocketChoice | undefined;
  readonly template: TemplateChoice | undefined;
  /** The path Envoy gets with `-c` (relative to cwd when configPath is). */
  readonly envoyPath: string;
  readonly absolutePath: string;
  private readonly parsed: Template | undefined;
  private readonly custom: boolean;

  constructor(
    private readonly config: AgentConfig,
    options: BootstrapWriterOptions = {},
  ) {
    this.sds = chooseSdsSocket(config, options.externalSds ?? false);
    this.filesSds = options.externalSds
      ? { path: FILE_CREDENTIAL_SOCKET, absolute: path.resolve(config.cwd, FILE_CREDENTIAL_SOCKET), reason: 'file secrets, beside the external SDS server' }
      : undefined;
    this.custom = config.proxy.customConfigFile !== '';
    if (this.custom) {
      this.envoyPath = config.proxy.customConfigFile;
      this.template = undefined;
      this.parsed = undefined;
    } else {
      this.template = chooseTemplate(config);
      this.parsed = loadTemplate(this.template);
      const yaml = /\.ya?ml(\.tmpl)?$/.test(this.template.path);
      // Go's path.Join cleans `./etc/istio/proxy` to `etc/istio/proxy`, as Istio's `-c` shows.
      this.envoyPath = path.posix.join(config.proxy.configPath, `envoy-rev.${yaml ? 'yaml' : 'json'}`);
    }
    this.absolutePath = path.resolve(config.cwd, this.envoyPath);
  }

  /** Renders the bootstrap text (pure given the inputs). */
  render(identity: NodeIdentity, annotations: Record<string, string>): string {
    if (!this.parsed) throw new Error('render() called with customConfigFile set');
    const data = templateData({ config: this.config, identity, annotations, sdsSocketPath: this.sds.path, ...(this.filesSds ? { fileSdsSocketPath: this.filesSds.path } : {}) });
    return this.parsed.render(data);
  }

  /** Writes the bootstrap atomically (dir mode 0700); returns the path for `-c`. */
  write(identity: NodeIdentity, annotations: Record<string, string>): string {
    if (this.custom) return this.envoyPath;
    const text = this.render(identity, annotations);
    if (this.envoyPath.endsWith('.json')) {
      try {
        JSON.parse(text);
      } catch (err) {
        throw new AgentError(
          'BOOTSTRAP_TEMPLATE_INVALID',
          `bootstrap template ${this.template?.path}: rendered output is not valid JSON: ${(err as Error).message}`,
        );
      }
    }
    const dir = path.dirname(this.absolutePath);
    const tmp = `${this.absolutePath}.tmp-${process.pid}`;
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(tmp, text, { mode: 0o600 });
      fs.renameSync(tmp, this.absolutePath);
    } catch (err) {
      removeQuietly(tmp);
      throw new AgentError('BOOTSTRAP_WRITE_FAILED', `configPath ${dir}: cannot write the Envoy bootstrap: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return this.envoyPath;
  }

  /** Deletes the generated file (never a customConfigFile). Idempotent. */
  remove(): void {
    if (this.custom) return;
    try {
      fs.rmSync(this.absolutePath, { force: true });
    } catch {
      // Nothing was written there (e.g. configPath is unusable); nothing to remove.
    }
  }
}

/** Removes a file if it is there; a path that cannot hold one (ENOTDIR) has nothing to remove. */
function removeQuietly(file: string): void {
  try {
    fs.rmSync(file, { force: true });
  } catch {
    // nothing was written there
  }
}
