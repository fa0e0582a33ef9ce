/**
 * `/quitquitquit` and `/drain` (SPEC §5.2, §6): loopback peers only (403 otherwise, whatever
 * the method), then POST only (405); the reply `OK` is sent before the action runs, so the
 * caller always gets its answer even if the action stops the agent.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import { describeError } from '../errors.js';
import { LOCALHOST_ONLY_BODY, isLoopbackAddress } from './loopback.js';
import { sendText } from './respond.js';

export const METHOD_NOT_ALLOWED_BODY = 'Method Not Allowed\n';

export function lifecycleHandler(path: string, action: () => void, log: Logger) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (!isLoopbackAddress(req.socket.remoteAddress)) {
      log.warn(`${path} refused: request from non-loopback peer ${req.socket.remoteAddress ?? 'unknown'}`);
      sendText(req, res, 403, LOCALHOST_ONLY_BODY);
      return;
    }
    if (req.method !== 'POST') {
      sendText(req, res, 405, METHOD_NOT_ALLOWED_BODY, { Allow: 'POST' });
      return;
    }
    sendText(req, res, 200, 'OK');
    log.info(`handling ${path}`);
    // Act once the reply is out (or the peer went away): 'close' always follows 'finish'.
    const act = () => {
      try {
        action();
      } catch (err) {
        log.error(`${path} failed: ${describeError(err)}`);
      }
    };
    if (res.closed) act();
    else res.once('close', act);
  };
}
