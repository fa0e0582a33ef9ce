/**
 * The process and Node.js families the agent exports (SPEC §12): prom-client 15's
 * `collectDefaultMetrics` names under `istio_agent_`, in registration order, on Linux with a
 * Node that has `process.getActiveResourcesInfo` (≥ 17). Dashboards for Node.js services use
 * these names; Istio's Go agent has `istio_agent_process_*` and `istio_agent_go_*` instead.
 */
type FamilyType = 'counter' | 'gauge' | 'histogram';

export const DEFAULT_FAMILIES: ReadonlyArray<readonly [name: string, type: FamilyType]> = (
  [
  ['process_cpu_user_seconds_total', 'counter'],
  ['process_cpu_system_seconds_total', 'counter'],
  ['process_cpu_seconds_total', 'counter'],
  ['process_start_time_seconds', 'gauge'],
  ['process_resident_memory_bytes', 'gauge'],
  ['process_virtual_memory_bytes', 'gauge'],
  ['process_heap_bytes', 'gauge'],
  ['process_open_fds', 'gauge'],
  ['process_max_fds', 'gauge'],
  ['nodejs_eventloop_lag_seconds', 'gauge'],
  ['nodejs_eventloop_lag_min_seconds', 'gauge'],
  ['nodejs_eventloop_lag_max_seconds', 'gauge'],
  ['nodejs_eventloop_lag_mean_seconds', 'gauge'],
  ['nodejs_eventloop_lag_stddev_seconds', 'gauge'],
  ['nodejs_eventloop_lag_p50_seconds', 'gauge'],
  ['nodejs_eventloop_lag_p90_seconds', 'gauge'],
  ['nodejs_eventloop_lag_p99_seconds', 'gauge'],
  ['nodejs_active_resources', 'gauge'],
  ['nodejs_active_resources_total', 'gauge'],
  ['nodejs_active_handles', 'gauge'],
  ['nodejs_active_handles_total', 'gauge'],
  ['nodejs_active_requests', 'gauge'],
  ['nodejs_active_requests_total', 'gauge'],
  ['nodejs_heap_size_total_bytes', 'gauge'],
  ['nodejs_heap_size_used_bytes', 'gauge'],
  ['nodejs_external_memory_bytes', 'gauge'],
  ['nodejs_heap_space_size_total_bytes', 'gauge'],
  ['nodejs_heap_space_size_used_bytes', 'gauge'],
  ['nodejs_heap_space_size_available_bytes', 'gauge'],
  ['nodejs_version_info', 'gauge'],
  ['nodejs_gc_duration_seconds', 'histogram'],
  ] satisfies Array<[string, FamilyType]>
).map(([name, type]) => [`istio_agent_${name}`, type] as const);

export const DEFAULT_FAMILY_NAMES: readonly string[] = DEFAULT_FAMILIES.map(([name]) => name);
