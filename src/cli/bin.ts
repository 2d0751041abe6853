#!/usr/bin/env node
/**
 * The `dcache-probe` bin: the program is built in src/cli/main.ts (one module per command
 * under src/cli/). Exit codes: 0 success; 1 the work failed; 2 invalid configuration or usage.
 * The young generation is capped first, before the modules load (src/cli/young-generation.ts).
 */
import { capYoungGeneration } from './young-generation';
capYoungGeneration();
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { main } = require('./main') as typeof import('./main');

main();
