#!/usr/bin/env node
/**
 * EXPERIMENT (bench only): the shipped `dcache-probe` CLI with the drain change of
 * drain-fix-patch.ts applied. Same arguments: `node dist/bench/experiments/drain-fix.js run …`.
 */
import { applyDrainFix } from './drain-fix-patch';
import { buildProgram } from '../../src/cli';

applyDrainFix();
buildProgram().parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`dcache-probe (drain-fix experiment): ${err.message}\n`);
  process.exit(1);
});
