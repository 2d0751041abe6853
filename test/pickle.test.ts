/**
 * The unpickler (src/legacy/pickle.ts) and the old probe's checkpoint (src/legacy/checkpoint.ts), on pickles
 * written by real Python: python3 here (every protocol), and Python 2.7's pickle/cPickle as
 * recorded below (the old probe ran on Python 2).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { checkpointInstant, parseCheckpoint, wallTimeToInstant } from '../src/legacy/checkpoint';
import { unpickle, UnpicklingError, type PyDatetime } from '../src/legacy/pickle';

/** Runs Python 3 code that writes a pickle to stdout; returns its bytes. */
function python(code: string): Buffer {
  return execFileSync('python3', ['-c', `import sys, pickle, datetime\n${code}`], { maxBuffer: 1 << 20 });
}

function dumps(expression: string, protocol: number, setup = ''): Buffer {
  return python(`${setup}\nsys.stdout.buffer.write(pickle.dumps(${expression}, protocol=${protocol}))`);
}

function fields(d: PyDatetime) {
  return [d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond];
}

/**
 * Written by Python 2.7.18 (the old probe's interpreter), base64:
 *   cPickle.dumps([datetime.datetime(2024, 10, 10, 10, 10, 10, 679949), ''], P)  for P = -1 (2), 1
 *   pickle.dumps(the same, 0)
 *   cPickle.dumps([datetime.datetime(2023, 12, 31, 23, 59, 59), 'pool:p@d:1700000000000-1'], 0)
 *   pickle.dumps([datetime.datetime(2024, 3, 10, 2, 30), 77], 2)
 * The first datetime's state holds the bytes 0x0a, 0x0d and 0x5c (newline, CR, backslash).
 */
const PYTHON2 = {
  cPickleProtocol2: 'gAJdcQEoY2RhdGV0aW1lCmRhdGV0aW1lCnECVQoH6AoKCgoKCmANhVJxA1UAZS4=',
  cPickleProtocol1: 'XXEBKGNkYXRldGltZQpkYXRldGltZQpxAihVCgfoCgoKCgoKYA10UnEDVQBlLg==',
  pickleProtocol0: 'KGxwMApjZGF0ZXRpbWUKZGF0ZXRpbWUKcDEKKFMnXHgwN1x4ZThcblxuXG5cblxuXG5gXHInCnAyCnRwMwpScDQKYVMnJwpwNQphLg==',
  cPickleProtocol0Transaction: 'KGxwMQpjZGF0ZXRpbWUKZGF0ZXRpbWUKcDIKKFMnXHgwN1x4ZTdceDBjXHgxZlx4MTc7O1x4MDBceDAwXHgwMCcKdFJwMwphUydwb29sOnBAZDoxNzAwMDAwMDAwMDAwLTEnCnA0CmEu',
  pickleProtocol2IntTransaction: 'gAJdcQAoY2RhdGV0aW1lCmRhdGV0aW1lCnEBVQoH6AMKAh4AAAAAcQKFcQNScQRLTWUu',
};

describe('the unpickler reads the old probe checkpoint as Python writes it', () => {
  for (const protocol of [0, 1, 2, 3, 4, 5]) {
    it(`reads [datetime, ''] written by Python 3 with protocol ${protocol}, including state bytes that are newline, CR and backslash`, () => {
      // 679949 = 0x0a5c0d: microsecond bytes newline, backslash, carriage return; day/hour 10 = newline.
      const data = dumps("[datetime.datetime(2024, 10, 10, 10, 10, 10, 679949), '']", protocol);
      const checkpoint = parseCheckpoint(data);
      assert.deepEqual(fields(checkpoint.datetime), [2024, 10, 10, 10, 10, 10, 679949]);
      assert.equal(checkpoint.datetime.tz, null);
      assert.equal(checkpoint.transaction, '');
      assert.equal(checkpoint.format, protocol >= 2 ? `pickle protocol ${protocol}` : 'pickle protocol 0 or 1');
    });
  }

  for (const [name, base64, expected, transaction] of [
    ['cPickle protocol 2 (what the old probe wrote: dump(..., -1))', PYTHON2.cPickleProtocol2, [2024, 10, 10, 10, 10, 10, 679949], ''],
    ['cPickle protocol 1', PYTHON2.cPickleProtocol1, [2024, 10, 10, 10, 10, 10, 679949], ''],
    ['pickle protocol 0 (escaped str literals)', PYTHON2.pickleProtocol0, [2024, 10, 10, 10, 10, 10, 679949], ''],
    ['cPickle protocol 0 with a transaction', PYTHON2.cPickleProtocol0Transaction, [2023, 12, 31, 23, 59, 59, 0], 'pool:p@d:1700000000000-1'],
    ['pickle protocol 2 with an integer transaction', PYTHON2.pickleProtocol2IntTransaction, [2024, 3, 10, 2, 30, 0, 0], '77'],
  ] as const) {
    it(`reads a checkpoint written by Python 2.7 ${name}`, () => {
      const checkpoint = parseCheckpoint(Buffer.from(base64, 'base64'));
      assert.deepEqual(fields(checkpoint.datetime), expected);
      assert.equal(checkpoint.transaction, transaction);
    });
  }

  it('reads the transaction string and a dict-shaped checkpoint of newer Gratia probes', () => {
    const listForm = parseCheckpoint(dumps("[datetime.datetime(2024, 1, 2, 3, 4, 5), 'pool:p@d:1-2 \\u00e9']", 2));
    assert.equal(listForm.transaction, 'pool:p@d:1-2 é');
    const dictForm = parseCheckpoint(dumps("{'date': datetime.datetime(2024, 1, 2, 3, 4, 5), 'transaction': None}", 4));
    assert.deepEqual(fields(dictForm.datetime), [2024, 1, 2, 3, 4, 5, 0]);
    assert.equal(dictForm.transaction, null);
  });

  for (const protocol of [0, 2, 4]) {
    it(`reads aware datetimes (timezone.utc, a fixed offset, zoneinfo) with protocol ${protocol}`, () => {
      const utc = parseCheckpoint(dumps("[datetime.datetime(2024, 3, 14, 12, 0, tzinfo=datetime.timezone.utc), '']", protocol)).datetime;
      assert.deepEqual(utc.tz, { kind: 'offset', offsetSeconds: 0 });
      const est = parseCheckpoint(dumps("[datetime.datetime(2024, 3, 14, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=-5), 'EST')), '']", protocol)).datetime;
      assert.deepEqual(est.tz, { kind: 'offset', offsetSeconds: -18000, name: 'EST' });
      assert.equal(checkpointInstant(est, 'UTC').iso, '2024-03-14T17:00:00.000000Z');
      const zoned = parseCheckpoint(dumps("[datetime.datetime(2024, 7, 1, 12, 0, tzinfo=zoneinfo.ZoneInfo('America/Chicago')), '']", protocol, 'import zoneinfo')).datetime;
      assert.deepEqual(zoned.tz, { kind: 'zone', zone: 'America/Chicago' });
      assert.equal(checkpointInstant(zoned, 'Asia/Tokyo').iso, '2024-07-01T17:00:00.000000Z', "the datetime's own zone wins over --time-zone");
    });
  }

  it("reads psycopg2's FixedOffsetTimezone and pytz zones (classes with their real pickling methods, in stand-in modules)", () => {
    // Stand-ins with the same module paths and the same __getinitargs__ / __reduce__ as
    // psycopg2.tz.FixedOffsetTimezone (2.7: minutes; 2.8+: a timedelta) and pytz (UTC, _p).
    const setup = `
import types
tzmod = types.ModuleType('psycopg2.tz'); pkg = types.ModuleType('psycopg2'); pkg.tz = tzmod
sys.modules['psycopg2'] = pkg; sys.modules['psycopg2.tz'] = tzmod
class FixedOffsetTimezone(datetime.tzinfo):
    def __init__(self, offset=None, name=None):
        self._offset = offset if isinstance(offset, datetime.timedelta) else datetime.timedelta(minutes=offset or 0)
        self._name = name
    def __getinitargs__(self): return self._offset, self._name
    def utcoffset(self, dt): return self._offset
FixedOffsetTimezone.__module__ = 'psycopg2.tz'; tzmod.FixedOffsetTimezone = FixedOffsetTimezone
pytz = types.ModuleType('pytz'); sys.modules['pytz'] = pytz
def _UTC(): return UTC
def _p(*args): return Localized(*args)
class UTCClass(datetime.tzinfo):
    def utcoffset(self, dt): return datetime.timedelta(0)
    def __reduce__(self): return _UTC, ()
class Localized(datetime.tzinfo):
    def __init__(self, zone, utcoffset, dst, tzname): self.args = (zone, utcoffset, dst, tzname)
    def utcoffset(self, dt): return datetime.timedelta(seconds=self.args[1])
    def __reduce__(self): return _p, self.args
for f in (_UTC, _p): f.__module__ = 'pytz'
pytz._UTC, pytz._p = _UTC, _p
UTC = UTCClass()
`;
    for (const protocol of [0, 2, 4]) {
      const psycopg = parseCheckpoint(dumps("[datetime.datetime(2024, 3, 14, 12, 0, tzinfo=FixedOffsetTimezone(60)), '']", protocol, setup)).datetime;
      assert.deepEqual(psycopg.tz, { kind: 'offset', offsetSeconds: 3600 }, `psycopg2, protocol ${protocol}`);
      assert.equal(checkpointInstant(psycopg, 'UTC').iso, '2024-03-14T11:00:00.000000Z');
      const pytzUtc = parseCheckpoint(dumps("[datetime.datetime(2024, 3, 14, 12, 0, tzinfo=UTC), '']", protocol, setup)).datetime;
      assert.deepEqual(pytzUtc.tz, { kind: 'offset', offsetSeconds: 0, name: 'UTC' }, `pytz.utc, protocol ${protocol}`);
      const pytzZone = parseCheckpoint(dumps("[datetime.datetime(2024, 7, 1, 12, 0, tzinfo=Localized('America/Chicago', -18000, 3600, 'CDT')), '']", protocol, setup)).datetime;
      assert.deepEqual(pytzZone.tz, { kind: 'offset', offsetSeconds: -18000, name: 'CDT' }, `pytz zone, protocol ${protocol}`);
    }
  });

  it('refuses pickles that call anything but datetime and time-zone constructors, and files that are not pickles', () => {
    const evil = dumps("[datetime.datetime(2024, 1, 1), Evil()]", 2, "import os\nclass Evil:\n    def __reduce__(self): return os.system, ('true',)");
    assert.throws(() => unpickle(evil), (err: Error) => err instanceof UnpicklingError && /refers to (posix|os)\.system/.test(err.message));
    assert.throws(() => parseCheckpoint(Buffer.from('<ProbeConfiguration/>\n')), /opcode/);
    assert.throws(() => parseCheckpoint(dumps("['not a date', '']", 2)), /expected \[datetime, transaction\], found a list of 2 items/);
    assert.throws(() => parseCheckpoint(Buffer.from(PYTHON2.cPickleProtocol2, 'base64').subarray(0, 20)), /truncated/);
  });
});

describe('a naive checkpoint time is read as wall-clock time of the old host', () => {
  const naive = (y: number, mo: number, d: number, h: number, mi: number, fold = 0): PyDatetime => ({ type: 'datetime', year: y, month: mo, day: d, hour: h, minute: mi, second: 0, microsecond: 123456, fold, tz: null });

  it('places an ordinary local time by the zone offset in force, keeping microseconds', () => {
    assert.deepEqual(wallTimeToInstant(naive(2024, 3, 14, 12, 0), 'America/Chicago'), { ms: Date.parse('2024-03-14T17:00:00.123Z'), iso: '2024-03-14T17:00:00.123456Z', placement: 'unique' });
    assert.equal(wallTimeToInstant(naive(2024, 1, 14, 12, 0), 'Europe/Berlin').iso, '2024-01-14T11:00:00.123456Z');
    assert.equal(wallTimeToInstant(naive(2024, 1, 14, 12, 0), 'UTC').iso, '2024-01-14T12:00:00.123456Z');
  });

  it('takes the first of the repeated autumn hour (fold 0) or the second (fold 1), and the pre-change offset in the spring gap', () => {
    assert.deepEqual(wallTimeToInstant(naive(2024, 11, 3, 1, 30), 'America/Chicago'), { ms: Date.parse('2024-11-03T06:30:00.123Z'), iso: '2024-11-03T06:30:00.123456Z', placement: 'ambiguous' });
    assert.equal(wallTimeToInstant(naive(2024, 11, 3, 1, 30, 1), 'America/Chicago').iso, '2024-11-03T07:30:00.123456Z');
    assert.deepEqual(wallTimeToInstant(naive(2024, 3, 10, 2, 30), 'America/Chicago'), { ms: Date.parse('2024-03-10T08:30:00.123Z'), iso: '2024-03-10T08:30:00.123456Z', placement: 'nonexistent' });
  });
});
