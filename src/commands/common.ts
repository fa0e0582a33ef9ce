/** Flags every small command accepts: Istio registers its logging flags on the root command. */
import type { FlagSpec } from '../config/flags.js';

export const LOG_FLAGS: readonly FlagSpec[] = [
  { long: 'log_output_level', type: 'string', doc: 'Log level, `level` or `default:level`', defaultText: 'default:info' },
  { long: 'log_as_json', type: 'bool', doc: 'Write logs as JSON' },
];
