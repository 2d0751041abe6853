#!/usr/bin/env node
/**
 * The `dcache-probe` bin: the program is built in src/cli/main.ts (one module per command
 * under src/cli/). Exit codes: 0 success; 1 the work failed; 2 invalid configuration or usage.
 */
import { main } from './main';

main();
