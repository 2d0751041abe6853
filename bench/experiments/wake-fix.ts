#!/usr/bin/env node
/**
 * EXPERIMENT (bench only): the shipped `dcache-probe` CLI with the requestDrain change of
 * wake-fix-patch.ts. Same arguments: `node dist/bench/experiments/wake-fix.js run …`.
 */
import { applyWakeFix } from './wake-fix-patch';
import { buildProgram } from '../../src/cli';

applyWakeFix();
buildProgram().parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`dcache-probe (wake-fix experiment): ${err.message}\n`);
  process.exit(1);
});
