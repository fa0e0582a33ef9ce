/** Jest runs the TypeScript sources directly through SWC (ESM). */
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'es6' },
      },
    ],
  },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testTimeout: 30000,
  // No forceExit: a handle that outlives its test keeps Jest from exiting, which is how a leak
  // shows (`npx jest --detectOpenHandles` names it). .ci/run bounds the run with a timeout.
  globalSetup: '<rootDir>/test/global-setup.js',
};
