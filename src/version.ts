/**
 * Versions. `ISTIO_COMPAT_VERSION` is reported to istiod as node metadata ISTIO_VERSION:
 * istiod gates features on it, so it names the Istio release whose Envoy the image ships
 * (the Dockerfile pins the same one), not this package's version.
 */
export const AGENT_VERSION = '0.1.0';
export const ISTIO_COMPAT_VERSION = '1.28.0';
