/**
 * The seed pod's istio-proxy container (`config/` has the full manifest): its args after
 * `proxy`, and its env as the kubelet expands it for a pod jiuxi-7d9c8-abcde in jiuxi-ns.
 */
export const SEED_ARGS = [
  'sidecar',
  '--domain',
  'jiuxi-ns.svc.cluster.local',
  '--serviceCluster',
  'jiuxi.jiuxi-ns',
  '--proxyLogLevel=warning',
  '--proxyComponentLogLevel=misc:error',
  '--trust-domain=cluster.local',
  '--concurrency',
  '2',
];

export const SEED_ENV: Record<string, string> = {
  JWT_POLICY: 'first-party-jwt',
  PILOT_CERT_PROVIDER: 'istiod',
  CA_ADDR: 'istiod.istio-system.svc:15012',
  POD_NAME: 'jiuxi-7d9c8-abcde',
  POD_NAMESPACE: 'jiuxi-ns',
  INSTANCE_IP: '10.244.1.7',
  SERVICE_ACCOUNT: 'default',
  HOST_IP: '192.168.49.2',
  CANONICAL_SERVICE: '',
  CANONICAL_REVISION: '',
  PROXY_CONFIG: '{"proxyMetadata":{"DNS_AGENT":""}}\n',
  ISTIO_META_POD_PORTS: '[\n    {"containerPort":80}\n]',
  ISTIO_META_APP_CONTAINERS: '[\n    nginx\n]',
  ISTIO_META_CLUSTER_ID: 'Kubernetes',
  ISTIO_META_INTERCEPTION_MODE: 'REDIRECT',
  ISTIO_META_WORKLOAD_NAME: 'jiuxi',
  ISTIO_META_OWNER: 'kubernetes://apis/apps/v1/namespaces/default/deployments/jiuxi',
  ISTIO_META_MESH_ID: 'cluster.local',
  DNS_AGENT: '',
  ISTIO_KUBE_APP_PROBERS: '{}',
};


/** The seed pod's labels and annotations files, as the kubelet writes them. */
export const SEED_LABELS =
  'app="jiuxi"\nistio.io/rev=""\npod-template-hash="5479899b95"\nsecurity.istio.io/tlsMode="istio"';
export const SEED_ANNOTATIONS =
  'kubernetes.io/config.seen="2020-08-13T01:08:09.000000000Z"\nkubernetes.io/config.source="api"\nsidecar.istio.io/interceptionMode="REDIRECT"\nsidecar.istio.io/status="{\\"version\\":\\"ed4e6e8ed4ffa03fe7d5b9d2c27cc8c478625ade64be2859cae3da0db9e5ee2e\\",\\"initContainers\\":[\\"istio-init\\"],\\"containers\\":[\\"istio-proxy\\"],\\"volumes\\":[\\"istio-envoy\\",\\"istio-data\\",\\"istio-podinfo\\",\\"istiod-ca-cert\\"],\\"imagePullSecrets\\":null}"\ntraffic.sidecar.istio.io/excludeInboundPorts="15020"\ntraffic.sidecar.istio.io/includeInboundPorts="80"\ntraffic.sidecar.istio.io/includeOutboundIPRanges="*"';
