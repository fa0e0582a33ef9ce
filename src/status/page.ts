/**
 * `GET /` (the status page) and `GET /status` (its JSON document), issue 17. Loopback-only
 * like the debug endpoints (403 with Istio's text otherwise), any method but no body read.
 * The page is one static HTML document (built once at import: inline CSS and script, no
 * external assets) that polls `/status` and renders it in the browser, so the status port
 * renders nothing per request beyond one JSON snapshot; the scrape and readiness paths are not
 * touched. Both answers are `Cache-Control: no-store` and gzip-compressed when accepted.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LOCALHOST_ONLY_BODY, isLoopbackAddress } from './loopback.js';
import { STATUS_PAGE_HTML } from './page-html.js';
import type { StatusRegistry } from './registry.js';
import { sendText } from './respond.js';

export const STATUS_CONTENT_TYPE = 'application/json; charset=utf-8';
const PAGE = Buffer.from(STATUS_PAGE_HTML);

export class StatusPageEndpoints {
  constructor(private readonly registry: StatusRegistry) {}

  readonly page = (req: IncomingMessage, res: ServerResponse): void => {
    if (!this.allowed(req, res)) return;
    sendText(req, res, 200, PAGE, {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      // Inline script and style only; nothing is loaded from anywhere.
      'Content-Security-Policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
    });
  };

  readonly json = (req: IncomingMessage, res: ServerResponse): void => {
    if (!this.allowed(req, res)) return;
    sendText(req, res, 200, `${JSON.stringify(this.registry.snapshot())}\n`, { 'Content-Type': STATUS_CONTENT_TYPE, 'Cache-Control': 'no-store' });
  };

  private allowed(req: IncomingMessage, res: ServerResponse): boolean {
    if (isLoopbackAddress(req.socket.remoteAddress)) return true;
    sendText(req, res, 403, LOCALHOST_ONLY_BODY);
    return false;
  }
}
