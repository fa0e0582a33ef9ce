/**
 * The one error catalogue. Every error the agent raises on purpose is an AgentError
 * with a stable `code`; `userFacing` errors (bad config, bad input) are reported
 * tersely, anything else is a bug and is reported with its stack.
 */
export type ErrorCode =
  | 'AGENT_CONFIG_INVALID'
  | 'AGENT_USAGE'
  | 'BOOTSTRAP_TEMPLATE_INVALID'
  | 'BOOTSTRAP_WRITE_FAILED'
  | 'ENVOY_SPAWN_FAILED'
  | 'ENVOY_CRASH_LOOP'
  | 'LIFECYCLE_DISPOSE_FAILED'
  | 'METRICS_SOURCE_FAILED'
  | 'METRICS_SINK_FAILED'
  | 'SUPERVISOR_ILLEGAL_TRANSITION'
  | 'IPTABLES_USAGE'
  | 'IPTABLES_FAILED'
  | 'STATUS_SERVER_LISTEN_FAILED'
  | 'CA_TOKEN_UNREADABLE'
  | 'CA_TLS_FAILED'
  | 'CA_UNAVAILABLE'
  | 'CA_REJECTED'
  | 'CA_BAD_RESPONSE'
  | 'SDS_LISTEN_FAILED'
  | 'WAIT_TIMEOUT'
  | 'REQUEST_FAILED'
  | 'HTTP_TRANSPORT_FAILED'
  | 'XDS_PROXY_LISTEN_FAILED'
  | 'XDS_WIRE_MALFORMED'
  | 'XDS_GRPC_FRAMING'
  | 'XDS_DIAL_FAILED'
  | 'DNS_LISTEN_FAILED'
  | 'DNS_CONFIG_INVALID';

export interface AgentErrorOptions {
  cause?: unknown;
  /** Process exit status when this error ends the process (default 255, Istio's). */
  exitCode?: number;
  userFacing?: boolean;
}

export class AgentError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  readonly userFacing: boolean;

  constructor(code: ErrorCode, message: string, options: AgentErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.code = code;
    this.exitCode = options.exitCode ?? 255;
    this.userFacing = options.userFacing ?? true;
  }
}

/** A configuration error: names its source (flag, env var, JSON path, file). */
export class ConfigError extends AgentError {
  constructor(message: string, options: AgentErrorOptions = {}) {
    super('AGENT_CONFIG_INVALID', message, options);
    this.name = 'ConfigError';
  }
}

/**
 * Disposing a component failed. Like the proposal's SuppressedError: `error` is the latest
 * failure, `suppressed` the one it displaced (an earlier disposer's, or the failure that
 * started the disposal), so several failures chain.
 */
export class DisposeError extends AgentError {
  readonly error: unknown;
  readonly suppressed: unknown;

  constructor(error: unknown, suppressed: unknown, message = `disposing failed: ${describeError(error)}`) {
    super('LIFECYCLE_DISPOSE_FAILED', message, { cause: error });
    this.name = 'DisposeError';
    this.error = error;
    this.suppressed = suppressed;
  }

  /** Every failure in the chain, oldest first. */
  errors(): unknown[] {
    const out: unknown[] = [];
    let cur: unknown = this;
    while (cur instanceof DisposeError) {
      out.unshift(cur.error);
      cur = cur.suppressed;
    }
    if (cur !== undefined) out.unshift(cur);
    return out;
  }
}

/** A metrics source (Envoy, the app) failed during one scrape; reported per source, never thrown out of the scrape. */
export class MetricsSourceError extends AgentError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('METRICS_SOURCE_FAILED', message, options);
    this.name = 'MetricsSourceError';
  }
}

/** Writing the merged scrape body to the client failed; ends that scrape. */
export class MetricsSinkError extends AgentError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('METRICS_SINK_FAILED', message, options);
    this.name = 'MetricsSinkError';
  }
}

/** An HTTP exchange of `wait`/`request` failed in transport; the message is the one-line, Go-like description. */
export class HttpRequestError extends AgentError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('HTTP_TRANSPORT_FAILED', message, options);
    this.name = 'HttpRequestError';
  }
}

/** Malformed protobuf wire bytes from an xDS peer (messages are walked, never decoded). */
export class WireError extends AgentError {
  constructor(message: string, options: AgentErrorOptions = {}) {
    super('XDS_WIRE_MALFORMED', message, options);
    this.name = 'WireError';
  }
}

/** A gRPC message frame the xDS proxy cannot take (compressed, or over the size limit). */
export class FramingError extends AgentError {
  constructor(message: string, options: AgentErrorOptions = {}) {
    super('XDS_GRPC_FRAMING', message, options);
    this.name = 'FramingError';
  }
}

/** An upstream xDS stream could not be opened; the message names the culprit (file, address, cause). */
export class XdsDialError extends AgentError {
  constructor(message: string, options: AgentErrorOptions = {}) {
    super('XDS_DIAL_FAILED', message, options);
    this.name = 'XdsDialError';
  }
}

/** One-line description of any thrown value, with its cause chain. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
    if (cur instanceof Error) {
      parts.push(cur.message);
      cur = cur.cause;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.join(': ');
}
