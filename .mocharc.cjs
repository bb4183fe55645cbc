'use strict';
// Tests are TypeScript run through tsx; they import the built packages (pnpm test builds first).
// `npx mocha test/x.test.ts` runs just that file; with no file given, every suite but the
// long fault/load cases (pnpm test:faults) runs.
const explicit = process.argv.slice(2).some(arg => /\.(ts|js|mjs)$/.test(arg) && !arg.startsWith('-'));
module.exports = {
  ...(explicit ? {} : { spec: ['test/**/*.test.ts'], ignore: ['test/faults/**'] }),
  'node-option': ['import=tsx'],
  // After the last test, nothing may be left running (no --exit: a leak fails the run, by name).
  require: ['test/leak-check.ts'],
  timeout: 60000,
  slow: 5000,
  reporter: 'spec',
};
