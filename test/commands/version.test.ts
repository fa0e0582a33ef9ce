/**
 * `pilot-agent version` in Istio's output shapes (long form, `-s`, `-o json|yaml`), from the
 * real CLI process and in-process, and the new commands in the top-level usage.
 */
import { describe, expect, test } from '@jest/globals';
import { parse as parseYaml } from 'yaml';
import { AGENT_VERSION, ISTIO_COMPAT_VERSION } from '../../src/version.js';
import { runCli, runInProcess } from './helpers.js';

describe('version', () => {
  test('long form: Go-like BuildInfo with the agent and Istio versions (real process)', async () => {
    const r = await runCli(['version']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(
      `version.BuildInfo{Version:"${AGENT_VERSION}", GitRevision:"unknown", IstioVersion:"${ISTIO_COMPAT_VERSION}", ` +
        `NodeVersion:"${process.version}", BuildStatus:"unknown", GitTag:"${AGENT_VERSION}"}\n`,
    );
  });

  test('-s / --short prints the version alone', async () => {
    for (const flag of ['-s', '--short']) {
      const r = await runInProcess(['version', flag]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`${AGENT_VERSION}\n`);
    }
  });

  test('-o json: clientVersion with Istio’s key names, indented by two', async () => {
    const r = await runInProcess(['version', '-o', 'json']);
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith('{\n  "clientVersion": {\n    "version": ')).toBe(true);
    expect(JSON.parse(r.stdout)).toEqual({
      clientVersion: {
        version: AGENT_VERSION,
        revision: 'unknown',
        istio_version: ISTIO_COMPAT_VERSION,
        node_version: process.version,
        status: 'unknown',
        tag: AGENT_VERSION,
      },
    });
  });

  test('--output=yaml: sorted keys and the trailing blank line Istio prints', async () => {
    const r = await runInProcess(['version', '--output=yaml']);
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith('\n\n')).toBe(true);
    const doc = parseYaml(r.stdout) as { clientVersion: Record<string, string> };
    expect(Object.keys(doc.clientVersion)).toEqual(['istio_version', 'node_version', 'revision', 'status', 'tag', 'version']);
    expect(doc.clientVersion.version).toBe(AGENT_VERSION);
  });

  test('a bad -o value or flag exits 255', async () => {
    const r = await runInProcess(['version', '-o', 'xml']);
    expect(r.code).toBe(255);
    expect(r.stderr).toBe("Error: --output must be 'yaml' or 'json'\n");
    expect((await runInProcess(['version', '--remote'])).code).toBe(255);
  });

  test('the top-level usage lists wait, request and version', async () => {
    const r = await runInProcess(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\n {2}request +Makes an HTTP request/);
    expect(r.stdout).toMatch(/\n {2}version +Prints out build version information/);
    expect(r.stdout).toMatch(/\n {2}wait +Waits until the Envoy proxy is ready/);
  });
});
