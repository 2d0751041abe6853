/**
 * src/cli/young-generation.ts: the bin caps V8's young generation itself (4 MB semi-spaces), so
 * that plain node (an `npm i -g` install) gets what the unit's and the image's NODE_OPTIONS
 * give; node's own young-generation setting, when there is one, is left alone. Measured on a
 * child node process under an allocation load whose batches survive scavenges (what makes V8
 * grow its new space), by V8's own heap-space statistics: no timing involved.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SEMI_SPACE_CAP_BYTES, growthFactor, youngGenerationConfigured } from '../src/cli/young-generation';
import { DIST } from './helpers/env';

const MODULE = join(DIST, 'src', 'cli', 'young-generation.js');

/** Largest new space (bytes) a child node reaches under the load, and whether the cap was installed. */
function underLoad(nodeFlags: string[], cap: boolean): { capped: boolean; maxNewSpace: number } {
  const script = `
    const v8 = require('node:v8');
    const capped = ${cap} ? require(${JSON.stringify(MODULE)}).capYoungGeneration() : false;
    const newSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
    let max = 0;
    (async () => {
      const kept = [];
      for (let i = 0; i < 400; i++) {
        const batch = [];
        for (let j = 0; j < 5000; j++) batch.push({ text: 'record ' + i + ':' + j, n: [i, j] });
        kept.push(batch);
        if (kept.length > 3) kept.shift();
        await new Promise((r) => setImmediate(r));
        max = Math.max(max, newSpace());
      }
      process.stdout.write(JSON.stringify({ capped, maxNewSpace: max }));
    })();`;
  return JSON.parse(execFileSync(process.execPath, [...nodeFlags, '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } }));
}

describe('the young-generation cap', () => {
  it('sets the growth factor that reaches the cap at the next growth, and 1 at the cap', () => {
    const MB = 1024 * 1024;
    assert.equal(SEMI_SPACE_CAP_BYTES, 4 * MB);
    assert.equal(growthFactor(1 * MB), 4);
    assert.equal(growthFactor(2 * MB), 2);
    assert.equal(growthFactor(3 * MB), 2);
    assert.equal(growthFactor(4 * MB), 1);
    assert.equal(growthFactor(16 * MB), 1);
  });

  it("recognises node's own young-generation settings, on the command line or in NODE_OPTIONS", () => {
    assert.equal(youngGenerationConfigured(['--max-semi-space-size=16'], undefined), true);
    assert.equal(youngGenerationConfigured([], '--enable-source-maps --max-semi-space-size=4'), true);
    assert.equal(youngGenerationConfigured(['--max-old-space-size=512'], '--enable-source-maps'), false);
    assert.equal(youngGenerationConfigured([], undefined), false);
  });

  it('keeps the new space at two 4 MB semi-spaces under a load that grows it without the cap', () => {
    const free = underLoad([], false);
    const capped = underLoad([], true);
    assert.ok(free.maxNewSpace > 2 * SEMI_SPACE_CAP_BYTES, `the load grows the new space without the cap (${free.maxNewSpace} bytes)`);
    assert.equal(capped.capped, true);
    assert.ok(capped.maxNewSpace <= 2 * SEMI_SPACE_CAP_BYTES, `capped new space ${capped.maxNewSpace} bytes`);
  });

  it("stands aside when node was started with its own semi-space size", () => {
    const own = underLoad(['--max-semi-space-size=16'], true);
    assert.equal(own.capped, false);
    assert.ok(own.maxNewSpace > 2 * SEMI_SPACE_CAP_BYTES, `node's own 16 MB semi-spaces (${own.maxNewSpace} bytes)`);
  });
});
