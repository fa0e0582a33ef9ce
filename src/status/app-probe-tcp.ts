/**
 * tcpSocket app probe (SPEC §6.3): a TCP connect to the destination within the timeout.
 * Resolves with undefined on success, else the reason; the socket is always closed.
 */
import net from 'node:net';
import { describeError } from '../errors.js';
import type { ProbeNetwork } from './app-probe-net.js';

export interface TcpProbeOptions {
  destination: string;
  port: number;
  timeoutMs: number;
  net: ProbeNetwork;
}

export async function probeTcp(options: TcpProbeOptions): Promise<string | undefined> {
  const deadline = Date.now() + options.timeoutMs;
  let endpoint;
  try {
    endpoint = await options.net.endpoint(options.destination);
  } catch (err) {
    return `cannot resolve ${options.destination}: ${describeError(err)}`;
  }
  return new Promise((resolve) => {
    const socket = net.connect({
      host: endpoint.address,
      port: options.port,
      family: endpoint.family,
      ...(endpoint.localAddress ? { localAddress: endpoint.localAddress } : {}),
    });
    const timer = setTimeout(() => finish(`connect timed out after ${options.timeoutMs} ms`), Math.max(0, deadline - Date.now()));
    const finish = (error: string | undefined) => {
      clearTimeout(timer);
      socket.removeAllListeners('connect');
      socket.removeAllListeners('error');
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(error);
    };
    socket.once('connect', () => finish(undefined));
    socket.once('error', (err) => finish(describeError(err)));
  });
}
