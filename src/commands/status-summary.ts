/**
 * PURE: the readable summary `pilot-agent status` prints from a `/status` document
 * (src/status/status.schema.json). One block per section, known sections first; a section
 * this version does not know is printed as its top-level `key: value` pairs.
 */
type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown): string => (v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));

export function summarizeStatus(doc: unknown): string {
  if (!isObj(doc) || !isObj(doc.sections)) return `${JSON.stringify(doc)}\n`;
  const s = doc.sections;
  const out: string[] = [`pilot-agent status (schema ${show(doc.schemaVersion)}, ${show(doc.generatedAt)})`];
  const block = (title: string, lines: string[]) => out.push('', title, ...lines.map((l) => `  ${l}`));
  const a = isObj(s.agent) ? s.agent : undefined;
  if (a) block('Agent', [`version ${show(a.version)} (Istio ${show(a.istioVersion)}), pid ${show(a.pid)}, up ${show(a.uptimeSeconds)}s`, `node ${show(a.nodeId)}${a.standalone ? ' (standalone)' : ''}`]);
  const e = isObj(s.envoy) ? s.envoy : undefined;
  if (e) {
    const cur = isObj(e.envoy) ? e.envoy : undefined;
    const lines = [`state ${cur?.live ? 'LIVE' : show(e.state)}${cur ? `, pid ${show(cur.pid)}, epoch ${show(cur.epoch)}, up ${show(cur.uptimeSeconds)}s` : ''}`, `restarts ${show(e.restarts)}`];
    if (isObj(e.lastExit)) {
      lines.push(`last exit: ${show(e.lastExit.description)} at ${show(e.lastExit.at)}`);
      for (const l of Array.isArray(e.lastExit.stderrTail) ? e.lastExit.stderrTail : []) lines.push(`  | ${show(l)}`);
    }
    if (isObj(e.backoff)) lines.push(`restarting at ${show(e.backoff.restartAt)} (backoff ${show(e.backoff.delayMs)} ms)`);
    block('Envoy', lines);
  }
  const r = isObj(s.readiness) ? s.readiness : undefined;
  if (r) block('Readiness', [r.ready ? 'ready' : `not ready: ${show(r.reason)}`]);
  const cp = isObj(s.controlPlane) ? s.controlPlane : undefined;
  if (cp) {
    const lines = cp.enabled ? [`${cp.connected ? 'connected' : 'not connected'} to ${show(cp.upstreamAddress)}, ${show(cp.upstreamConnects)} upstream connects`] : [show(cp.reason)];
    for (const t of Array.isArray(cp.types) ? cp.types.filter(isObj) : []) lines.push(`${show(t.typeUrl)}: last ACK ${show(t.lastAckAt)}, ${show(t.acks)} ACKs, ${show(t.nacks)} NACKs`);
    for (const n of Array.isArray(cp.nacks) ? cp.nacks.filter(isObj) : []) lines.push(`NACK ${show(n.at)} ${show(n.typeUrl)}: ${show(n.message)}`);
    block('Control plane', lines);
  }
  const c = isObj(s.certificates) ? s.certificates : undefined;
  if (c) {
    const w = isObj(c.workload) ? c.workload : undefined;
    block('Certificates', c.enabled ? [`state ${show(c.state)}`, ...(w ? [`${show(w.spiffeIds)} issued by ${show(w.issuer)}, not after ${show(w.notAfter)}`] : [])] : [show(c.reason)]);
  }
  const p = isObj(s.pod) ? s.pod : undefined;
  if (p) block('Pod', [`labels ${show(p.labels)}`, `${show(p.reloads)} podinfo reloads, last ${show(p.lastReloadAt)}`]);
  const m = isObj(s.metrics) ? s.metrics : undefined;
  if (m) {
    const last = Array.isArray(m.recent) && isObj(m.recent[0]) ? m.recent[0] : undefined;
    block('Merged metrics', [`${show(m.scrapes)} scrapes, duplicate families dropped ${show(m.duplicateFamiliesDropped)}`, ...(last ? [`last: ${show(last.at)}, ${show(last.durationMs)} ms, ${show(last.bytes)} bytes, sources ${show(last.sources)}`] : [])]);
  }
  const known = new Set(['agent', 'envoy', 'readiness', 'controlPlane', 'certificates', 'pod', 'metrics']);
  for (const [name, v] of Object.entries(s)) {
    if (known.has(name)) continue;
    block(name, isObj(v) ? Object.entries(v).map(([k, x]) => `${k}: ${show(x)}`) : [show(v)]);
  }
  return `${out.join('\n')}\n`;
}
