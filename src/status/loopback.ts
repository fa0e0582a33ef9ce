/**
 * PURE: is a peer address loopback? (SPEC §6: 127.0.0.0/8, `::1`, or `::ffff:127.x.y.z`.)
 * Used for the loopback-only endpoints; an unknown address is never loopback.
 */
import { isIPv4 } from 'node:net';

/** The 403 body for a non-loopback peer on a loopback-only endpoint (Istio's text). */
export const LOCALHOST_ONLY_BODY = 'Only requests from localhost are allowed\n';

export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  let a = address.toLowerCase();
  // A zone (`::1%lo`) never appears on loopback; strip it defensively.
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  if (a === '::1' || a === '0:0:0:0:0:0:0:1') return true;
  const mapped = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a) ?? /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  const v4 = mapped ? (mapped[1] as string) : a;
  return isIPv4(v4) && v4.split('.')[0] === '127';
}
