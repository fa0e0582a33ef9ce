/**
 * The status page document (issue 17): static HTML with inline CSS and a small script that
 * polls `GET /status` every second and renders each section — dedicated panels for agent,
 * envoy, readiness, controlPlane, certificates, pod, metrics and dns, and a generic key/value
 * panel for any other registered provider. All text goes through `textContent` (no HTML
 * injection from the document). No framework, no external assets (the pod has no internet).
 */
export const STATUS_POLL_INTERVAL_MS = 1000;

const CSS = `
:root { --bg:#f6f7f9; --card:#fff; --ink:#1d2430; --muted:#5b6473; --line:#e2e5ea; --ok:#1a7f37; --bad:#c62828; --warn:#b26a00; --accent:#2f5fb3; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--ink); }
header { display:flex; flex-wrap:wrap; align-items:baseline; gap:12px 20px; padding:14px 22px; background:#18202c; color:#eef1f5; }
header h1 { margin:0; font-size:18px; font-weight:600; }
header .meta { color:#b8c0cc; font-size:13px; }
header .conn { margin-left:auto; font-size:13px; }
main { display:grid; grid-template-columns:repeat(auto-fill, minmax(420px, 1fr)); gap:16px; padding:18px 22px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; min-width:0; }
section h2 { margin:0 0 10px; font-size:15px; display:flex; align-items:center; gap:8px; }
dl { display:grid; grid-template-columns:max-content 1fr; gap:4px 14px; margin:0; }
dt { color:var(--muted); }
dd { margin:0; overflow-wrap:anywhere; }
table { width:100%; border-collapse:collapse; margin-top:8px; font-size:13px; }
th, td { text-align:left; padding:3px 6px; border-bottom:1px solid var(--line); vertical-align:top; overflow-wrap:anywhere; }
th { color:var(--muted); font-weight:500; white-space:nowrap; }
td.n { white-space:nowrap; font-variant-numeric:tabular-nums; }
table.kv td:first-child { width:42%; }
table.kv td:last-child { font:12px ui-monospace, SFMono-Regular, Menlo, monospace; word-break:break-all; }
pre { margin:6px 0 0; padding:8px; background:#101722; color:#e8ecf1; border-radius:6px; font-size:12px; white-space:pre-wrap; overflow-wrap:anywhere; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; color:#fff; background:var(--muted); }
.badge.ok { background:var(--ok); } .badge.bad { background:var(--bad); } .badge.warn { background:var(--warn); }
.muted { color:var(--muted); }
.sub { margin:12px 0 2px; font-size:13px; font-weight:600; }
code { font:12px ui-monospace, SFMono-Regular, Menlo, monospace; }
`;

// Plain ES2017 in the browser; no backticks or template placeholders in this block.
const SCRIPT = `
'use strict';
var POLL = ${STATUS_POLL_INTERVAL_MS};
function el(tag, attrs, children) {
  var e = document.createElement(tag);
  if (attrs) for (var k in attrs) { if (k === 'text') e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]); }
  (children || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
  return e;
}
function badge(text, kind, id) { var a = { 'class': 'badge ' + (kind || ''), text: text }; if (id) a.id = id; return el('span', a); }
function fmt(v) { return v === null || v === undefined || v === '' ? '\\u2014' : typeof v === 'object' ? JSON.stringify(v) : String(v); }
function when(iso) {
  if (!iso) return '\\u2014';
  var s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  var ago = s < 0 ? 'in ' + dur(-s) : dur(s) + ' ago';
  return iso.replace('T', ' ').replace(/\\.\\d+Z$/, 'Z') + ' (' + ago + ')';
}
function clock(iso) {
  if (!iso) return '\u2014';
  var s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  return iso.slice(11, 19) + ' \u00b7 ' + (s < 0 ? 'in ' + dur(-s) : dur(s) + ' ago');
}
function size(n) { return n < 1024 ? n + ' B' : n < 1048576 ? (n / 1024).toFixed(1) + ' KiB' : (n / 1048576).toFixed(1) + ' MiB'; }
function dur(s) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm' + (s % 60) + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h' + Math.floor((s % 3600) / 60) + 'm';
  return Math.floor(s / 86400) + 'd' + Math.floor((s % 86400) / 3600) + 'h';
}
function dl(rows) {
  var d = el('dl');
  rows.forEach(function (r) { if (!r) return; d.appendChild(el('dt', { text: r[0] })); var dd = el('dd', r[2] ? { id: r[2] } : null); if (r[1] instanceof Node) dd.appendChild(r[1]); else dd.textContent = fmt(r[1]); d.appendChild(dd); });
  return d;
}
function table(head, rows, cls) {
  var t = el('table', cls ? { 'class': cls } : null);
  t.appendChild(el('tr', null, head.map(function (h) { return el('th', { text: h }); })));
  rows.forEach(function (r) { t.appendChild(el('tr', null, r.map(function (c, i) { return c instanceof Node ? el('td', null, [c]) : el('td', cls !== 'kv' && (i === 0 || typeof c === 'number' || fmt(c).length <= 24) ? { 'class': 'n', text: fmt(c) } : { text: fmt(c) }); }))); });
  return t;
}
function sub(text) { return el('div', { 'class': 'sub', text: text }); }
function kv(obj) { var keys = Object.keys(obj || {}); return keys.length ? table(['key', 'value'], keys.sort().map(function (k) { return [k, obj[k]]; }), 'kv') : el('div', { 'class': 'muted', text: 'none' }); }
function shortType(t) { return String(t).replace('type.googleapis.com/', '').replace(/^envoy\\.config\\.[a-z]+\\.v3\\./, ''); }

var PANELS = {
  envoy: ['Envoy', function (s) {
    var e = s.envoy, out = [];
    var state = e && e.live ? 'LIVE' : String(s.state).toUpperCase();
    var kind = e && e.live ? 'ok' : s.state === 'backoff' || s.state === 'stopped' ? 'bad' : 'warn';
    out.push(dl([
      ['state', badge(state, kind, 'envoy-state')],
      ['supervisor', s.state],
      ['pid', e ? e.pid : null, 'envoy-pid'],
      ['epoch', e ? e.epoch : null],
      ['uptime', e && e.uptimeSeconds != null ? dur(e.uptimeSeconds) : null],
      ['started', e ? when(e.startedAt) : null],
      ['restarts', s.restarts, 'envoy-restarts'],
      ['crash budget', s.budget.exitsInWindow + ' of ' + s.budget.maxExits + ' exits in ' + dur(s.budget.windowSeconds)],
      s.backoff ? ['restarting', 'in ' + s.backoff.delayMs + ' ms backoff, at ' + when(s.backoff.restartAt), 'envoy-backoff'] : null,
      ['hot restart', s.hotRestart ? 'enabled' : 'disabled'],
    ]));
    if (s.lastExit) {
      out.push(sub('Last unexpected exit'));
      out.push(dl([['reason', s.lastExit.description, 'envoy-last-exit'], ['pid', s.lastExit.pid], ['at', when(s.lastExit.at)]]));
      out.push(el('pre', { id: 'envoy-last-stderr', text: s.lastExit.stderrTail.length ? s.lastExit.stderrTail.join('\\n') : '(no stderr output)' }));
    }
    return out;
  }],
  readiness: ['Readiness', function (s) {
    return [
      dl([['ready', badge(s.ready ? 'READY' : 'NOT READY', s.ready ? 'ok' : 'bad', 'readiness-state')], s.ready ? null : ['reason', s.reason, 'readiness-reason']]),
      sub('Recent transitions'),
      table(['at', 'to'], s.transitions.slice().reverse().map(function (t) { return [clock(t.at), t.ready ? 'ready' : 'not ready: ' + t.reason]; })),
    ];
  }],
  controlPlane: ['Control plane', function (s) {
    if (!s.enabled) return [el('div', { 'class': 'muted', text: s.reason })];
    return [
      dl([['upstream', s.upstreamAddress + (s.plaintext ? ' (plaintext)' : ' (TLS)')], ['connected', badge(s.connected ? 'CONNECTED' : 'DISCONNECTED', s.connected ? 'ok' : 'bad')], ['stream', s.streamKind], ['upstream connects', s.upstreamConnects], ['last connect', when(s.lastUpstreamConnectAt)], ['Envoy streams', s.envoyStreams], ['stream resets', s.streamResets]]),
      sub('Last push acknowledged, per type'),
      table(['type', 'last ACK', 'version', 'ACKs', 'NACKs'], s.types.map(function (t) { return [shortType(t.typeUrl), clock(t.lastAckAt), t.version, t.acks, t.nacks]; })),
      sub('Recent NACKs'),
      s.nacks.length ? table(['at', 'type', 'error'], s.nacks.slice().reverse().map(function (n) { return [clock(n.at), shortType(n.typeUrl), (n.code != null ? n.code + ': ' : '') + n.message]; })) : el('div', { 'class': 'muted', text: 'none' }),
    ];
  }],
  certificates: ['Certificates', function (s) {
    if (!s.enabled) return [el('div', { 'class': 'muted', text: s.reason })];
    var w = s.workload;
    if (!w) return [dl([['state', s.state]]), el('div', { 'class': 'muted', text: 'no workload certificate yet' })];
    return [dl([
      ['state', badge(String(s.state).toUpperCase(), s.state === 'valid' ? 'ok' : s.state === 'expired' ? 'bad' : 'warn')],
      ['SPIFFE ID', w.spiffeIds.join(', ')], ['issuer', w.issuer], ['serial', w.serialNumber],
      ['not after', when(w.notAfter)], ['next rotation', when(w.nextRotation.earliest) + ' \\u2026 ' + when(w.nextRotation.latest)], ['received', when(w.receivedAt)], ['chain length', w.chainLength],
    ])];
  }],
  pod: ['Pod', function (s) {
    return [dl([['podinfo', s.podInfoDir], ['reloads', s.reloads], ['last reload', when(s.lastReloadAt)]]), sub('Labels'), kv(s.labels), sub('Annotations'), kv(s.annotations)];
  }],
  metrics: ['Merged metrics', function (s) {
    var dup = Object.keys(s.duplicateFamiliesDropped).map(function (k) { return k + ': ' + s.duplicateFamiliesDropped[k]; }).join(', ');
    return [
      dl([['scrapes', s.scrapes], ['duplicate families dropped', dup || '0']]),
      sub('Last scrapes'),
      s.recent.length === 0 ? el('div', { 'class': 'muted', text: 'no scrape yet' }) : table(['at', 'ms', 'size', 'sources', 'failures'], s.recent.map(function (r) {
        var src = Object.keys(r.sources).map(function (k) { return k + ' ' + r.sources[k]; }).join(', ');
        var errs = Object.keys(r.errors).map(function (k) { return k + ': ' + r.errors[k]; }).concat(r.error ? [r.error] : []).join('; ');
        return [clock(r.at), r.durationMs.toFixed(1), size(r.bytes), src, errs || 'none'];
      })),
    ];
  }],
  agent: null,
};
function generic(name, s) { return [typeof s === 'object' && s !== null && !Array.isArray(s) ? dl(Object.keys(s).map(function (k) { return [k, s[k]]; })) : el('pre', { text: JSON.stringify(s, null, 2) })]; }

var main = document.getElementById('panels');
var cards = {};
function render(doc) {
  var a = doc.sections.agent || {};
  document.getElementById('node').textContent = a.nodeId ? a.nodeId : '';
  document.getElementById('version').textContent = a.version ? 'pilot-agent ' + a.version + ' (Istio ' + a.istioVersion + '), pid ' + a.pid + ', up ' + dur(a.uptimeSeconds) + (a.standalone ? ', standalone' : '') : '';
  Object.keys(doc.sections).forEach(function (name) {
    if (name === 'agent') return;
    var panel = PANELS[name], s = doc.sections[name];
    var card = cards[name];
    if (!card) { card = cards[name] = el('section', { id: 'panel-' + name }); main.appendChild(card); }
    var title = panel ? panel[0] : name === 'dns' ? 'DNS' : name;
    var body;
    try { body = s && s.error && Object.keys(s).length === 1 ? [el('div', { 'class': 'muted', text: s.error })] : panel ? panel[1](s) : generic(name, s); }
    catch (err) { body = [el('pre', { text: 'cannot render: ' + err + '\\n' + JSON.stringify(s, null, 2) })]; }
    card.replaceChildren.apply(card, [el('h2', { text: title })].concat(body));
  });
}
var conn = document.getElementById('conn');
function poll() {
  fetch('/status', { cache: 'no-store' }).then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); }).then(function (doc) {
    render(doc);
    conn.textContent = 'updated ' + new Date(doc.generatedAt).toISOString().slice(11, 19) + 'Z';
    conn.className = 'conn';
  }).catch(function (err) {
    conn.textContent = 'agent unreachable (' + err.message + '); retrying';
    conn.className = 'conn badge bad';
  }).then(function () { setTimeout(poll, POLL); });
}
poll();
`;

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pilot-agent status</title>
<style>${CSS}</style>
</head>
<body>
<header><h1>pilot-agent status</h1><span class="meta" id="node"></span><span class="meta" id="version"></span><span class="conn" id="conn">loading…</span></header>
<main id="panels"></main>
<noscript><p>This page needs JavaScript; the same facts are at <a href="/status">/status</a> (JSON).</p></noscript>
<script>${SCRIPT}</script>
</body>
</html>
`;
