// checkMsgpack's verdicts, around the run-of-ints fast loop (token ids) and the general path.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkMsgpack, GuardError, type GuardKind, type GuardLimits } from '../../src/events/msgpack-guard.js';

const kindOf = (bytes: number[], limits?: GuardLimits): GuardKind | 'ok' => {
  try {
    checkMsgpack(Uint8Array.from(bytes), limits);
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof GuardError);
    return err.kind;
  }
};

// [ts, [[tag, 1, 300, 70000]], 0]: a batch whose event holds fixint, uint16 and uint32 ints
const EVENT = [0x94, 0xa1, 0x42, 0x01, 0xcd, 0x01, 0x2c, 0xce, 0x00, 0x01, 0x11, 0x70];
const BATCH = [0x93, 0x01, 0x91, ...EVENT, 0x00];

describe('checkMsgpack', () => {
  it('accepts a well-formed batch and records where the root elements start', () => {
    const starts: number[] = [];
    checkMsgpack(Uint8Array.from(BATCH), {}, starts);
    assert.deepEqual(starts, [1, 2, BATCH.length - 1]);
  });

  // (maxElements raised: by default a payload this short fails the element count first)
  const ROOMY = { maxElements: 1 << 20 };

  it('rejects an int cut short inside a run of ints', () => {
    assert.equal(kindOf(BATCH.slice(0, 7), ROOMY), 'truncated'); // uint16 missing a byte
    assert.equal(kindOf(BATCH.slice(0, 12), ROOMY), 'truncated'); // uint32 missing bytes
    assert.equal(kindOf([0x92, 0x01, 0xcc], ROOMY), 'truncated');
  });

  it('rejects a run whose remaining values the bytes left cannot hold', () => {
    // [[300, 300, 300 ... declared 5 of them, 3 present]]
    assert.equal(kindOf([0x91, 0x95, 0xcd, 1, 44, 0xcd, 1, 44, 0xcd, 1, 44], ROOMY), 'truncated');
    assert.equal(kindOf([0x91, 0x95, 0xcd, 1, 44, 0xcd, 1, 44, 0xcd, 1, 44, 0x01], ROOMY), 'truncated');
    assert.equal(kindOf([0xdc, 0x03, 0xe8, 0x01, 0x02], ROOMY), 'truncated'); // 1000 declared, 2 bytes
  });

  it('hands a non-int in a run to the general path: invalid bytes, strings, nested containers', () => {
    assert.equal(kindOf([0x93, 0x01, 0xc1, 0x02]), 'invalid');
    assert.equal(kindOf([0x93, 0x01, 0xa1, 0x41, 0x91, 0x05]), 'ok');
    assert.equal(kindOf([0x92, 0x91, 0x91, 0x01, 0x02], { maxDepth: 2 }), 'depth');
  });

  it('keeps the limits on events, elements and trailing bytes', () => {
    assert.equal(kindOf(BATCH, { maxEvents: 0 }), 'events');
    assert.equal(kindOf(BATCH, { maxElements: 5 }), 'elements');
    assert.equal(kindOf([...BATCH, 0x00]), 'trailing');
  });
});
