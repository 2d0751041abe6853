#!/usr/bin/env node
/**
 * EXPERIMENT (bench only): the shipped `dcache-probe` CLI with usageRecordXml replaced by the
 * string-built prototype of fast-encode.ts (same bytes: bench/encode.ts checks it), to measure
 * in the real pipeline what leaving fast-xml-parser would save.
 *   node dist/bench/experiments/fast-encode-cli.js poll --once …
 */
import * as mapping from '../../src/mapping';
import * as xml from '../../src/xml';
import { buildProgram } from '../../src/cli';
import { makeFastXml } from './fast-encode';

type Anything = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const fast = makeFastXml({ xmlSafe: xml.xmlSafe, isoDuration: mapping.isoDuration, rfc3339: mapping.rfc3339, EncodeError: mapping.EncodeError });
(xml as Anything).usageRecordXml = fast;

buildProgram().parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`dcache-probe (fast-encode experiment): ${err.message}\n`);
  process.exit(1);
});
