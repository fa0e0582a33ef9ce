/**
 * An external SDS provider (SPIRE's integration, Istio's `checkSocket`): is a healthy SDS
 * server already listening on the workload socket?
 *
 * "Healthy" is Istio's test: a gRPC (HTTP/2, plaintext) connection to the unix socket reaches
 * READY within `timeoutMs` (1 s, as Istio's dial deadline). A path that is not there, or is a
 * regular file, is no provider (`absent`). A socket that does not complete the connection in
 * time is stale: it is removed (as Istio does) so the agent can bind its own server there; if
 * it cannot be removed that is an AgentError `SDS_LISTEN_FAILED`. Never leaves a connection
 * open.
 */
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { AgentError, describeError } from '../errors.js';
import type { Logger } from '../log.js';

export type ExternalSdsCheck = { kind: 'healthy' } | { kind: 'absent' } | { kind: 'stale-removed'; why: string };

function dial(socketPath: string, timeoutMs: number): Promise<void> {
  const client = new grpc.Client(`unix:${socketPath}`, grpc.credentials.createInsecure());
  return new Promise<void>((resolve, reject) => {
    client.waitForReady(Date.now() + timeoutMs, (err) => {
      client.close();
      if (err) reject(err);
      else resolve();
    });
  });
}

export async function checkExternalSds(socketPath: string, log: Logger, timeoutMs = 1000): Promise<ExternalSdsCheck> {
  let st: fs.Stats;
  try {
    st = fs.statSync(socketPath);
  } catch {
    return { kind: 'absent' };
  }
  if (st.isFile()) return { kind: 'absent' };
  try {
    await dial(socketPath, timeoutMs);
    return { kind: 'healthy' };
  } catch (err) {
    const why = describeError(err);
    log.debug(`SDS socket ${socketPath} detected but not healthy: ${why}`);
    try {
      fs.rmSync(socketPath, { force: true });
    } catch (rmErr) {
      throw new AgentError('SDS_LISTEN_FAILED', `existing SDS socket ${socketPath} is not healthy (${why}) and could not be removed: ${describeError(rmErr)}`, { cause: rmErr });
    }
    return { kind: 'stale-removed', why };
  }
}
