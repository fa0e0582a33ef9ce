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
  // forceExit stays as a safety net: the suite exits on its own in most full runs, but one in four
  // here left an in-process grpc-js server session and a UDP socket open. Jest then prints "Force
  // exiting Jest", so a leak stays visible; `npx jest --detectOpenHandles` names it.
  forceExit: true,
  globalSetup: '<rootDir>/test/global-setup.js',
};
