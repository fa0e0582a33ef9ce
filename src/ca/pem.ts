/** PURE: PEM helpers that need no X.509 library (kept apart so the SDS path loads fast). */

/** Splits concatenated PEM text into its `CERTIFICATE` blocks (each ending in a newline). */
export function splitPemCertificates(text: string): string[] {
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((b) => `${b}\n`);
}
