// Integration tests: `*.int-spec.ts` against real servers started by @iot/testing.
module.exports = {
  ...require('./jest.preset'),
  displayName: 'integration',
  testMatch: ['**/src/**/*.int-spec.ts'],
  testTimeout: 120_000,
  // Servers are started per test file; run files one after another on small machines.
  maxWorkers: 1,
};
