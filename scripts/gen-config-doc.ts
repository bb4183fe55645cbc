// Writes docs/CONFIGURATION.md and shared/src/settings/known-variables.ts from the settings tables.
// Run with `pnpm docs:config` (it builds first: the tables are read from the built packages).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { DOC_PATH, KNOWN_PATH, ROOT, renderConfigurationDoc, renderKnownVariables } from './config-doc.js';

writeFileSync(DOC_PATH, renderConfigurationDoc());
writeFileSync(KNOWN_PATH, renderKnownVariables());
console.log(`wrote ${path.relative(ROOT, DOC_PATH)} and ${path.relative(ROOT, KNOWN_PATH)}`);
