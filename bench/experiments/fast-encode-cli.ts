#!/usr/bin/env node
/**
 * EXPERIMENT (bench only): the shipped `dcache-probe` CLI with usageRecordXml replaced by the
 * string-built prototype of fast-encode.ts (same bytes: bench/encode.ts checks it), to measure
 * in the real pipeline what leaving fast-xml-parser would save.
 *   node dist/bench/experiments/fast-encode-cli.js poll --once …
 */
import * as time from '../../src/record/time';
import { EncodeError } from '../../src/record/types';
import * as xml from '../../src/record/xml';
import { buildProgram } from '../../src/cli/main';
import { makeFastXml } from './fast-encode';

type Anything = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const fast = makeFastXml({ xmlSafe: xml.xmlSafe, isoDuration: time.isoDuration, rfc3339: time.rfc3339, EncodeError });
(xml as Anything).usageRecordXml = fast;

buildProgram().parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`dcache-probe (fast-encode experiment): ${err.message}\n`);
  process.exit(1);
});
