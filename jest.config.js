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
  // Integration tests own real processes and sockets; a handle that outlives its test must not
  // hang CI. Jest still prints "Force exiting Jest" when that happens, so a leak stays visible.
  forceExit: true,
  globalSetup: '<rootDir>/test/global-setup.js',
};
