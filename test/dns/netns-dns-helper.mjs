// Runs inside a test network namespace (started with `ip netns exec`) for the DNS capture
// test. Plain JS over the built dist/ (the jest globalSetup builds it).
//
//   upstream <ip>                  a resolver on 0.0.0.0:53 (UDP and TCP): every A query is
//                                  answered with <ip>; prints "ready"; exits when stdin closes.
//   agent <upstream-host> <port>   the agent's DNS proxy (dist/src/dns/server.js) on
//                                  127.0.0.1:<port> with a one-entry table (svc.example →
//                                  10.0.0.1), forwarding the rest to <upstream-host>:53.
//   query <host> <name> <udp|tcp> [uid gid]
//                                  drop to uid/gid, ask <host>:53 for <name> A, print one JSON
//                                  line {"ok":true,"answers":[…],"aa":…} or {"ok":false,"code":…}.
import dgram from 'node:dgram';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import dnsPacket from 'dns-packet';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const [mode, ...rest] = process.argv.slice(2);

function tcpFrames(sock, onMessage) {
  let buf = Buffer.alloc(0);
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const n = buf.readUInt16BE(0);
      onMessage(buf.subarray(2, 2 + n));
      buf = buf.subarray(2 + n);
    }
  });
}
const frame = (b) => {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
};

if (mode === 'upstream') {
  const [ip] = rest;
  const answer = (msg) => {
    const q = dnsPacket.decode(msg);
    const question = q.questions[0];
    return dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE, questions: [question], answers: [{ type: 'A', name: question.name, ttl: 60, data: ip }] });
  };
  const udp = dgram.createSocket('udp4');
  udp.on('message', (m, r) => udp.send(answer(m), r.port, r.address));
  udp.bind(53, '0.0.0.0', () => {
    net.createServer((c) => {
      c.on('error', () => {});
      tcpFrames(c, (m) => c.write(frame(answer(m))));
    }).listen(53, '0.0.0.0', () => process.stdout.write('ready\n'));
  });
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
} else if (mode === 'agent') {
  const [upstream, port] = rest;
  const { DnsServer } = await import(pathToFileURL(path.join(ROOT, 'dist', 'src', 'dns', 'server.js')).href);
  const { createLogger } = await import(pathToFileURL(path.join(ROOT, 'dist', 'src', 'log.js')).href);
  const dns = await DnsServer.start({
    addresses: [{ host: '127.0.0.1', port: Number(port) }],
    servers: [`${upstream}:53`],
    context: { namespace: 'ns', domain: 'ns.svc.cluster.local', search: [] },
    forwardTimeoutMs: 2000,
    forwardParallel: false,
    cacheSize: 0,
    respondBeforeSync: false,
    log: createLogger({ outputLevel: 'none' }),
  });
  dns.updateTable({ 'svc.example': { ips: ['10.0.0.1'], registry: 'External', shortname: '', namespace: '', altHosts: [] } });
  process.stdout.write('ready\n');
  process.stdin.on('end', async () => {
    await dns.close();
    process.exit(0);
  });
  process.stdin.resume();
} else if (mode === 'query') {
  const [host, name, proto, uid, gid] = rest;
  if (gid !== undefined) {
    process.setgroups([]);
    process.setgid(Number(gid));
  }
  if (uid !== undefined) process.setuid(Number(uid));
  const q = dnsPacket.encode({ type: 'query', id: 4321, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] });
  const done = (r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  };
  const reply = (b) => {
    const p = dnsPacket.decode(b);
    done({ ok: true, answers: p.answers.map((a) => a.data), aa: p.flag_aa });
  };
  setTimeout(() => done({ ok: false, code: 'TIMEOUT' }), 4000);
  if (proto === 'udp') {
    const s = dgram.createSocket('udp4');
    s.on('message', reply);
    s.on('error', (e) => done({ ok: false, code: e.code ?? e.message }));
    s.send(q, 53, host);
  } else {
    const c = net.connect({ host, port: 53 });
    c.on('error', (e) => done({ ok: false, code: e.code ?? e.message }));
    c.on('connect', () => c.write(frame(q)));
    tcpFrames(c, reply);
  }
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
