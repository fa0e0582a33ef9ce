// Runs inside a test network namespace (started with `ip netns exec`) for the iptables
// kernel tests. Plain JS so it runs without a build.
//
//   serve <tag> <port>...          listen on [::]:<port> (dual stack) for each port and answer
//                                  every connection with "<tag>:<port>\n" (so the client learns
//                                  which listener took it); print "ready" once all listen; exit
//                                  when stdin closes.
//   connect <host> <port> [uid gid] drop to uid/gid (no supplementary groups), connect, print one
//                                  JSON line: {"ok":true,"reply":…} or {"ok":false,"code":…}.
import net from 'node:net';

const [mode, ...rest] = process.argv.slice(2);

if (mode === 'serve') {
  const [tag, ...ports] = rest;
  let pending = ports.length;
  for (const port of ports) {
    const server = net.createServer((sock) => {
      sock.on('error', () => {});
      sock.end(`${tag}:${port}\n`);
    });
    server.on('error', (e) => {
      process.stderr.write(`listen ${port}: ${e.message}\n`);
      process.exit(1);
    });
    server.listen({ port: Number(port), host: '::', ipv6Only: false }, () => {
      if (--pending === 0) process.stdout.write('ready\n');
    });
  }
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
} else if (mode === 'connect') {
  const [host, port, uid, gid] = rest;
  if (gid !== undefined) {
    process.setgroups([]);
    process.setgid(Number(gid));
  }
  if (uid !== undefined) process.setuid(Number(uid));
  const done = (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(0);
  };
  const timer = setTimeout(() => done({ ok: false, code: 'TIMEOUT' }), 4000);
  let data = '';
  const sock = net.connect({ host, port: Number(port) });
  sock.setEncoding('utf8');
  sock.on('data', (d) => (data += d));
  sock.on('end', () => {
    clearTimeout(timer);
    done({ ok: true, reply: data.trim() });
  });
  sock.on('error', (e) => {
    clearTimeout(timer);
    done({ ok: false, code: e.code ?? e.message });
  });
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
