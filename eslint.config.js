// Lint that guards the architecture: no floating promises, no import cycles, no reaching into
// another package's src/ or another shared folder's files, no long functions, type-only imports
// marked as such. test/ops/lint-guards.test.ts plants a violation of each and expects it caught.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';

const PACKAGE_BOUNDARIES = [
  { group: ['**/shared/src/**', '**/producer/src/**', '**/worker/src/**', '**/scheduler/src/**'], message: 'Import another package through its public API (@taskline/<name>), never its src/.' },
  { group: ['@taskline/*/src/**', '@taskline/*/dist/**'], message: 'Import @taskline/<name> or one of its declared subpaths, never its src/ or dist/.' },
];
const FOLDER_BOUNDARY = {
  regex: '^\\.\\./(?:\\.\\./)*[a-z-]+/(?!index\\.js$)[^/]+$',
  message: 'Use another folder of @taskline/shared through its index.ts (../<folder>/index.js), which lists what it offers.',
};

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'coverage/**', '**/*.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.js', 'worker/examples/*.ts', 'scheduler/examples/*.ts', 'scripts/*.ts', 'examples/*/*.ts'] }, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    // Sources import `./x.js` and mean `./x.ts`: without this alias no import resolves and
    // import-x/no-cycle passes every cycle (test/ops/lint-guards.test.ts plants one).
    settings: {
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createNodeResolver({ extensionAlias: { '.js': ['.ts', '.js'] }, conditionNames: ['types', 'import', 'default'] })],
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
      'no-restricted-imports': ['error', { patterns: PACKAGE_BOUNDARIES }],
    },
  },
  {
    // Inside @taskline/shared, a folder (connection/, job/, ops/, process/, settings/) uses another
    // only through that folder's index.ts, which lists what it offers.
    files: ['shared/src/*/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [...PACKAGE_BOUNDARIES, FOLDER_BOUNDARY] }],
    },
  },
  {
    // Functions a reader takes in at once; a longer one says why in an eslint-disable comment.
    files: ['{shared,producer,worker,scheduler}/src/**/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      globals: Object.fromEntries(
        ['process', 'console', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'fetch', 'URL', 'Buffer', 'performance'].map(name => [name, 'readonly']),
      ),
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-expressions': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
);
