/**
 * The option table: every flag and environment variable the `proxy` command reads,
 * with its type, default and documentation. It drives parsing, validation, `--help`
 * and the README reference. Nothing else reads `process.env`.
 */
import type { FlagSpec } from './flags.js';

export const PROXY_FLAGS: readonly FlagSpec[] = [
  { long: 'domain', type: 'string', doc: 'DNS domain suffix', defaultText: '${POD_NAMESPACE}.svc.cluster.local' },
  { long: 'serviceCluster', type: 'string', doc: 'Service cluster; only fills an empty ProxyConfig serviceCluster', defaultText: 'istio-proxy' },
  {
    long: 'proxyLogLevel',
    type: 'string',
    doc: 'The log level used to start the Envoy proxy; comma-separated, `level` or `component:level` items (e.g. info,misc:error)',
    defaultText: 'warning',
  },
  { long: 'proxyComponentLogLevel', type: 'string', doc: 'Deprecated: component log levels, used when --proxyLogLevel has none', defaultText: '' },
  { long: 'concurrency', type: 'int', doc: 'Number of worker threads to run (0 = unset; prefer ProxyConfig concurrency)', defaultText: '0' },
  { long: 'templateFile', type: 'string', doc: 'Go template bootstrap config (overridden by ISTIO_BOOTSTRAP)' },
  { long: 'outlierLogPath', type: 'string', doc: 'The log path for outlier detection' },
  { long: 'meshConfig', type: 'string', doc: 'File with the mesh config (read only if it exists)', defaultText: './etc/istio/config/mesh' },
  { long: 'stsPort', type: 'int', doc: 'HTTP port of the STS server (0 = off)', defaultText: '0' },
  { long: 'standalone', type: 'bool', doc: 'Run without a control plane: no xDS in the bootstrap, no xDS proxy (also PILOT_AGENT_STANDALONE=true)' },
  { long: 'log_output_level', type: 'string', doc: 'Agent log level, `level` or `default:level` (e.g. default:info)', defaultText: 'default:info' },
  { long: 'log_as_json', type: 'bool', doc: 'Write agent logs as JSON' },
  { long: 'help', short: 'h', type: 'bool', doc: 'Show this help' },
];

export type EnvType = 'string' | 'bool' | 'int' | 'duration' | 'json';

export interface EnvSpec {
  name: string;
  type: EnvType;
  /** Raw default in the variable's own syntax ('' = unset). */
  default: string;
  doc: string;
  /** `int` only: the least value accepted; a smaller one is a start-up error naming the variable. */
  min?: number;
}

/** Environment variables read by `proxy` (SPEC §2 and the sections cited). */
export const PROXY_ENV = [
  { name: 'POD_NAME', type: 'string', default: '', doc: 'Pod name (node ID, metadata NAME)' },
  { name: 'POD_NAMESPACE', type: 'string', default: '', doc: 'Pod namespace (node ID, default --domain)' },
  { name: 'INSTANCE_IP', type: 'string', default: '', doc: 'Pod IP; first node IP when it parses as an IP' },
  { name: 'SERVICE_ACCOUNT', type: 'string', default: '', doc: 'Service account (metadata SERVICE_ACCOUNT)' },
  { name: 'HOST_IP', type: 'string', default: '', doc: 'Node IP, substituted for $(HOST_IP) in ISTIO_BOOTSTRAP_OVERRIDE' },
  { name: 'PROXY_CONFIG', type: 'json', default: '', doc: 'ProxyConfig layer (YAML or JSON) over the mesh defaultConfig' },
  { name: 'ISTIO_KUBE_APP_PROBERS', type: 'json', default: '', doc: 'Rewritten app probes (JSON map path → prober)' },
  { name: 'ISTIO_PROMETHEUS_ANNOTATIONS', type: 'json', default: '', doc: 'App metrics to merge: JSON {"scrape","path","port"}' },
  { name: 'CA_ADDR', type: 'string', default: '', doc: 'Address of the CA (default: discoveryAddress)' },
  { name: 'JWT_POLICY', type: 'string', default: 'third-party-jwt', doc: 'Which service-account token to send: third-party-jwt | first-party-jwt' },
  { name: 'PILOT_CERT_PROVIDER', type: 'string', default: 'istiod', doc: 'Provider of the control plane root certificate' },
  { name: 'TRUST_DOMAIN', type: 'string', default: 'cluster.local', doc: 'Trust domain of the workload identity' },
  { name: 'EXIT_ON_ZERO_ACTIVE_CONNECTIONS', type: 'bool', default: 'false', doc: 'On termination, wait until Envoy has no active downstream connections' },
  { name: 'MINIMUM_DRAIN_DURATION', type: 'duration', default: '5s', doc: 'Minimum drain before polling active connections (with EXIT_ON_ZERO_ACTIVE_CONNECTIONS)' },
  { name: 'TERMINATION_DRAIN_DURATION_SECONDS', type: 'int', default: '', doc: 'Istio 1.6 name: drain seconds, used only when no ProxyConfig layer sets terminationDrainDuration' },
  { name: 'ISTIO_BOOTSTRAP', type: 'string', default: '', doc: 'Bootstrap template path (wins over --templateFile)' },
  { name: 'ISTIO_BOOTSTRAP_OVERRIDE', type: 'string', default: '', doc: 'YAML/JSON file passed to Envoy as --config-yaml' },
  { name: 'ENVOY_STATUS_PORT', type: 'int', default: '15021', doc: "Envoy's readiness listener port" },
  { name: 'ENVOY_PROMETHEUS_PORT', type: 'int', default: '15090', doc: "Envoy's Prometheus listener port" },
  { name: 'ISTIO_CPU_LIMIT', type: 'int', default: '0', doc: 'CPU limit; sets concurrency when ProxyConfig leaves it unset' },
  { name: 'METRICS_LOCALHOST_ACCESS_ONLY', type: 'bool', default: 'false', doc: 'Serve metrics to loopback peers only (also from proxyMetadata)' },
  {
    name: 'METRICS_MERGE_CONCURRENCY',
    type: 'int',
    default: '2',
    min: 0,
    doc: 'Merged metrics scrapes (/stats/prometheus) that run at once; more wait in METRICS_MERGE_QUEUE (0 = no limit)',
  },
  {
    name: 'METRICS_MERGE_QUEUE',
    type: 'int',
    default: '32',
    min: 0,
    doc: 'Merged scrapes that may wait for a slot, each for at most half its scrape timeout; beyond it, or past that wait, 503 with Retry-After',
  },
  { name: 'XDS_ROOT_CA', type: 'string', default: '', doc: 'Root CA file for the xDS connection' },
  { name: 'CA_ROOT_CA', type: 'string', default: '', doc: 'Root CA file for the CA connection' },
  { name: 'ISTIOD_SAN', type: 'string', default: '', doc: 'Expected SAN/ServerName of istiod' },
  { name: 'ISTIO_DELTA_XDS', type: 'bool', default: 'true', doc: 'Use Delta xDS (DELTA_GRPC) rather than state of the world (GRPC)' },
  { name: 'ENVOY_SKIP_DEPRECATED_LOGS', type: 'bool', default: 'true', doc: 'Pass --skip-deprecated-logs to Envoy' },
  { name: 'ISTIO_ENVOY_ENABLE_CORE_DUMP', type: 'bool', default: 'false', doc: 'Pass --enable-core-dump to Envoy' },
  { name: 'REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION', type: 'bool', default: 'false', doc: 'Send rewritten app probes to localhost instead of the pod IP' },
  { name: 'ISTIO_ENABLE_HTTP2_PROBING', type: 'bool', default: 'true', doc: 'Use HTTP/2 (ALPN) for HTTPS app probes' },
  { name: 'SECRET_TTL', type: 'duration', default: '24h', doc: 'Requested workload certificate lifetime' },
  { name: 'SECRET_GRACE_PERIOD_RATIO', type: 'string', default: '0.5', doc: 'Fraction of the lifetime after which the certificate is renewed' },
  { name: 'WORKLOAD_RSA_KEY_SIZE', type: 'int', default: '2048', doc: 'RSA key size of the workload key' },
  { name: 'SECRET_GRACE_PERIOD_RATIO_JITTER', type: 'string', default: '0.01', doc: 'Random spread (±) added to SECRET_GRACE_PERIOD_RATIO, to stagger renewals' },
  { name: 'ECC_SIGNATURE_ALGORITHM', type: 'string', default: '', doc: 'ECDSA: workload key is ECDSA (curve ECC_CURVE) instead of RSA' },
  { name: 'ECC_CURVE', type: 'string', default: 'P256', doc: 'Curve of the ECDSA workload key: P256 or P384' },
  { name: 'PKCS8_KEY', type: 'bool', default: 'false', doc: 'Encode the workload private key as PKCS#8 (default: PKCS#1 for RSA, SEC 1 for ECDSA)' },
  { name: 'OUTPUT_CERTS', type: 'string', default: '', doc: 'Directory the issued workload certificate is also written to (key.pem 0600, cert-chain.pem, root-cert.pem); never read back' },
  { name: 'FILE_MOUNTED_CERTS', type: 'bool', default: 'false', doc: 'Serve default/ROOTCA from ./etc/certs/{cert-chain,key,root-cert}.pem (watched) and send no CSR' },
  { name: 'CA_PROVIDER', type: 'string', default: 'Citadel', doc: 'CA provider; GkeWorkloadCertificate serves GKE\'s mounted certificates (certificates.pem, private_key.pem, ca_certificates.pem) and sends no CSR' },
  { name: 'FILE_DEBOUNCE_DURATION', type: 'duration', default: '100ms', doc: 'Delay between a change to a watched certificate file and its re-read' },
  { name: 'PILOT_AGENT_STANDALONE', type: 'bool', default: 'false', doc: 'Run without a control plane (same as --standalone)' },
  { name: 'DRAIN_DEADLINE', type: 'duration', default: '', doc: 'Optional bound on the whole termination sequence (unset = none)' },
  { name: 'ENVOY_RESTART_BACKOFF_INITIAL', type: 'duration', default: '1s', doc: 'First delay before restarting a crashed Envoy (doubles each time, ±20% jitter)' },
  { name: 'ENVOY_RESTART_BACKOFF_MAX', type: 'duration', default: '30s', doc: 'Cap on the restart delay' },
  { name: 'ENVOY_RESTART_BACKOFF_RESET', type: 'duration', default: '1m', doc: 'An Envoy ready for this long resets the restart delay when it dies' },
  { name: 'ENVOY_RESTART_BUDGET', type: 'int', default: '5', doc: 'Envoy exits tolerated within ENVOY_RESTART_BUDGET_WINDOW before the agent exits 1 (crash loop)' },
  { name: 'ENVOY_RESTART_BUDGET_WINDOW', type: 'duration', default: '5m', doc: 'Sliding window of the crash-loop budget' },
  {
    name: 'ENVOY_HOT_RESTART',
    type: 'bool',
    default: 'false',
    doc: 'Hot-restart Envoy (--restart-epoch) when its bootstrap changes; off: the new bootstrap applies at the next start',
  },
  { name: 'ENVOY_USER', type: 'string', default: 'istio-proxy', doc: 'User name Envoy runs as (istio-iptables default uid)' },
  { name: 'ISTIO_META_DNS_CAPTURE', type: 'bool', default: 'false', doc: 'Sidecar: run the DNS proxy (NDS name table from istiod, resolver on DNS_PROXY_ADDR); also from proxyMetadata' },
  { name: 'ISTIO_META_ENABLE_DNS_SERVER', type: 'bool', default: 'false', doc: 'Run the DNS proxy whatever the proxy type (no capture implied); also from proxyMetadata' },
  { name: 'DNS_PROXY_ADDR', type: 'string', default: 'localhost:15053', doc: 'DNS proxy address (host:port); `localhost` listens on 127.0.0.1 and/or ::1 by the resolv.conf families; `:53` needs root' },
  { name: 'DNS_FORWARD_TIMEOUT', type: 'duration', default: '5s', doc: 'Timeout of each upstream DNS query' },
  { name: 'DNS_FORWARD_PARALLEL', type: 'bool', default: 'false', doc: 'Send forwarded DNS queries to all resolv.conf servers at once (first answer wins)' },
  { name: 'DNS_CACHE_SIZE', type: 'int', default: '0', min: 0, doc: 'Not in Istio: entries of the upstream DNS answer cache (TTL-honouring, LRU); 0 = no cache' },
  { name: 'DNS_RESOLV_CONF', type: 'string', default: '/etc/resolv.conf', doc: 'Not in Istio: the resolv.conf the DNS proxy reads for upstream servers and search domains' },
] as const satisfies readonly EnvSpec[];

type EnvEntry = (typeof PROXY_ENV)[number];
type EnvValueOf<T extends EnvType> = T extends 'bool' ? boolean : T extends 'int' | 'duration' ? number : string;
/** Strings are always set ('' when unset); other types with no default may be undefined. */
type MaybeUnset<S extends EnvSpec> = S['type'] extends 'string' ? never : S['default'] extends '' ? undefined : never;

/**
 * The typed environment, derived from PROXY_ENV: one field per variable, named as the variable,
 * typed from its `type` (bool → boolean, int/duration → number (ms), string/json → string) and
 * `| undefined` only when it has no default. A misspelt name does not compile.
 */
export type EnvValues = { readonly [S in EnvEntry as S['name']]: EnvValueOf<S['type']> | MaybeUnset<S> };

export type EnvName = EnvEntry['name'];
