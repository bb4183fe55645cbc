'use strict';
// Tests are TypeScript run through tsx; they import the built packages (pnpm test builds first).
module.exports = {
  spec: ['test/**/*.test.ts'],
  'node-option': ['import=tsx'],
  timeout: 60000,
  slow: 5000,
  exit: true,
  reporter: 'spec',
};
