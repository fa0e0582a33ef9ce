/**
 * `/debug/ndsz` (Istio's): the DNS proxy's name table as JSON (protojson field names, empty
 * fields omitted, generated short names included), loopback peers only (403 otherwise).
 * 404 with `{}` when the DNS proxy is off or has no table yet.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NameTable } from '../dns/nds.js';
import { LOCALHOST_ONLY_BODY, isLoopbackAddress } from './loopback.js';
import { sendText } from './respond.js';

/** `table` returns the current table, or undefined when there is none. */
export function ndszHandler(table: () => NameTable | undefined) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (!isLoopbackAddress(req.socket.remoteAddress)) {
      sendText(req, res, 403, LOCALHOST_ONLY_BODY);
      return;
    }
    const nt = table();
    const json = { 'Content-Type': 'application/json' };
    if (!nt) {
      sendText(req, res, 404, '{}', json);
      return;
    }
    sendText(req, res, 200, JSON.stringify({ table: protoJson(nt) }, null, 2), json);
  };
}

function protoJson(nt: NameTable): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [host, i] of Object.entries(nt)) {
    const e: Record<string, unknown> = {};
    if (i.ips.length > 0) e.ips = i.ips;
    if (i.registry) e.registry = i.registry;
    if (i.shortname) e.shortname = i.shortname;
    if (i.namespace) e.namespace = i.namespace;
    if (i.altHosts.length > 0) e.altHosts = i.altHosts;
    out[host] = e;
  }
  return out;
}
