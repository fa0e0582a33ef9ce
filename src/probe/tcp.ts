/**
 * TCP probe: a connect within the timeout. Resolves (never rejects) with the outcome; the
 * socket is always destroyed before it resolves. With a `network` the source rule applies.
 */
import net from 'node:net';
import { connectTarget, type ProbeNetwork } from './network.js';

export type ProbeOutcome = { ok: true } | { ok: false; timedOut: boolean; error: unknown };

export interface TcpProbeOptions {
  host: string;
  port: number;
  timeoutMs: number;
  /** Source rule and name resolution; absent = connect to `host` as is (Node resolves names). */
  network?: ProbeNetwork;
}

export async function probeTcp(options: TcpProbeOptions): Promise<ProbeOutcome> {
  const deadline = Date.now() + options.timeoutMs;
  let target;
  try {
    target = await connectTarget(options.host, options.port, options.network);
  } catch (err) {
    return { ok: false, timedOut: false, error: new Error(`cannot resolve ${options.host}`, { cause: err }) };
  }
  return new Promise((resolve) => {
    const socket = net.connect(target);
    const timer = setTimeout(
      () => finish({ ok: false, timedOut: true, error: new Error(`connect timed out after ${options.timeoutMs} ms`) }),
      Math.max(0, deadline - Date.now()),
    );
    const finish = (outcome: ProbeOutcome) => {
      clearTimeout(timer);
      socket.removeAllListeners('connect');
      socket.removeAllListeners('error');
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(outcome);
    };
    socket.once('connect', () => finish({ ok: true }));
    socket.once('error', (error) => finish({ ok: false, timedOut: false, error }));
  });
}
