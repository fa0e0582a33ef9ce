/**
 * The bootstrap beside an external SDS server (issue 14, Istio's `custom_file_path`): `sds-grpc`
 * points at the external workload socket, a second cluster `sds-files-grpc` at the agent's
 * file-credential socket, the node carries `file-credential: "true"`; without one, neither
 * appears. Both renderings validate against Envoy's v3 Bootstrap proto.
 */
import { describe, expect, test } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BootstrapWriter } from '../../src/bootstrap/bootstrap.js';
import { computeIdentity } from '../../src/bootstrap/node.js';
import { validateBootstrap } from '../support/bootstrap-validator.js';
import { POD_INTERFACES, seedConfig } from '../support/config.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function render(externalSds: boolean): Json {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'bootstrap-ext-'));
  const config = seedConfig({ cwd });
  const identity = computeIdentity(config, { interfaces: POD_INTERFACES, fileCredential: externalSds });
  const writer = new BootstrapWriter(config, { externalSds });
  const json = JSON.parse(writer.render(identity, config.pod.annotations)) as Json;
  fs.rmSync(cwd, { recursive: true, force: true });
  return json;
}

const pipe = (b: Json, name: string): string | undefined =>
  (b.static_resources.clusters as Json[]).find((c) => c.name === name)?.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path;

describe('bootstrap with an external SDS server', () => {
  test('sds-grpc → the external socket, sds-files-grpc → the file-credential socket, node file-credential; valid', () => {
    const b = render(true);
    expect(pipe(b, 'sds-grpc')).toBe('./var/run/secrets/workload-spiffe-uds/socket');
    expect(pipe(b, 'sds-files-grpc')).toBe('./var/run/secrets/credential-uds/files-socket');
    expect(b.node.metadata['file-credential']).toBe('true');
    expect(validateBootstrap(b)).toEqual([]);
  });

  test('without one: no sds-files-grpc, no file-credential', () => {
    const b = render(false);
    expect(pipe(b, 'sds-files-grpc')).toBeUndefined();
    expect(b.node.metadata['file-credential']).toBeUndefined();
    expect(validateBootstrap(b)).toEqual([]);
  });
});
