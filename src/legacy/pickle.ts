/**
 * A small, safe unpickler for exactly one kind of file: the checkpoint of the old Gratia
 * dCache-transfer probe (`chkpt_dcache_xfer_DoNotDelete`), which its Checkpoint class wrote with
 * `cPickle.dump([datestamp, transaction], file, -1)`: a list of a `datetime.datetime` and a
 * string (usually ''). Python 2 wrote it with protocol 2 (-1 = the highest), Python 3 with its
 * highest (4 or 5); protocols 0 and 1 are read as well, in case a site rewrote the file by hand.
 *
 * Pickle is a little stack machine. This reader runs only the opcodes such a file can contain
 * (containers, strings, integers, the memo, and calls) and never imports or runs anything: a
 * "call" (REDUCE) is allowed only for the handful of Python callables that build datetimes and
 * time zones (the WHITELIST below), which are re-created here as plain data. Anything else is
 * refused with a message naming what was found.
 *
 * Reference: CPython's Lib/pickle.py and Lib/pickletools.py (opcode meanings and byte layouts).
 */

export class UnpicklingError extends Error {
  override name = 'UnpicklingError';
}

/** A time zone carried by an aware datetime. */
export type PyTimeZone =
  /** A fixed offset east of UTC (datetime.timezone, psycopg2's FixedOffsetTimezone, pytz UTC and pytz's pickled zones). */
  | { kind: 'offset'; offsetSeconds: number; name?: string }
  /** A named IANA zone (zoneinfo.ZoneInfo): the offset depends on the date. */
  | { kind: 'zone'; zone: string };

export interface PyDatetime {
  type: 'datetime';
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  microsecond: number;
  /** PEP 495: 1 for the second of two equal wall times (protocol >= 4 only). */
  fold: number;
  tz: PyTimeZone | null;
}

export interface PyTimedelta {
  type: 'timedelta';
  days: number;
  seconds: number;
  microseconds: number;
}

/** A Python 2 `str` or a Python 3 `bytes`: raw bytes. */
export interface PyBytes {
  type: 'bytes';
  bytes: Buffer;
}

/** A reference to a whitelisted Python callable (the result of GLOBAL / STACK_GLOBAL). */
export interface PyGlobal {
  type: 'global';
  module: string;
  name: string;
}

/** An object under construction by a whitelisted tzinfo class (state applied by BUILD). */
interface PyTzObject {
  type: 'tzobject';
  tz: PyTimeZone;
}

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | PyValue[]
  | Map<string, PyValue>
  | PyBytes
  | PyDatetime
  | PyTimedelta
  | PyGlobal
  | PyTzObject;

/** The stack's marker for MARK (a unique object, never a value). */
const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

/** Python callables this reader re-creates, as "module name" (both Python 2 and 3 spellings). */
const WHITELIST = new Set([
  'datetime datetime',
  'datetime timedelta',
  'datetime timezone',
  '_codecs encode', // Python 3 pickles bytes as _codecs.encode(str, 'latin1') in protocols 0-2
  '__builtin__ bytes', // ... and empty bytes as bytes()
  'builtins bytes',
  'pytz _UTC', // pytz.utc
  'pytz _p', // any other pytz zone: pytz._p(zone, utcoffset_s, dst_s, tzname)
  'zoneinfo ZoneInfo._unpickle', // zoneinfo.ZoneInfo('Europe/Berlin')
  'zoneinfo ZoneInfo', // protocols < 4 spell the above getattr(zoneinfo.ZoneInfo, '_unpickle')
  '__builtin__ getattr',
  'builtins getattr',
  'psycopg2.tz FixedOffsetTimezone', // what psycopg2 attaches to timestamptz values
]);

/** Opcode bytes (pickletools names). */
const OP = {
  MARK: 0x28, // '('  push the mark
  STOP: 0x2e, // '.'  end: the top of the stack is the result
  POP: 0x30, // '0'
  POP_MARK: 0x31, // '1'
  DUP: 0x32, // '2'
  INT: 0x49, // 'I'  decimal text line; "01"/"00" are True/False (protocol 0)
  BININT: 0x4a, // 'J'  4-byte signed little-endian
  BININT1: 0x4b, // 'K'  1-byte unsigned
  LONG: 0x4c, // 'L'  decimal text line with a trailing L
  BININT2: 0x4d, // 'M'  2-byte unsigned little-endian
  NONE: 0x4e, // 'N'
  REDUCE: 0x52, // 'R'  callable(*args)
  STRING: 0x53, // 'S'  quoted Python 2 str literal, text line (protocol 0)
  BINSTRING: 0x54, // 'T'  4-byte length + bytes (Python 2 str)
  SHORT_BINSTRING: 0x55, // 'U'  1-byte length + bytes (Python 2 str)
  UNICODE: 0x56, // 'V'  raw-unicode-escape text line (protocol 0)
  BINUNICODE: 0x58, // 'X'  4-byte length + UTF-8
  APPEND: 0x61, // 'a'
  BUILD: 0x62, // 'b'  apply state to an object
  GLOBAL: 0x63, // 'c'  "module\nname\n"
  DICT: 0x64, // 'd'
  APPENDS: 0x65, // 'e'
  GET: 0x67, // 'g'  memo index as a text line
  BINGET: 0x68, // 'h'
  LONG_BINGET: 0x6a, // 'j'
  LIST: 0x6c, // 'l'
  PUT: 0x70, // 'p'  memo index as a text line
  BINPUT: 0x71, // 'q'
  LONG_BINPUT: 0x72, // 'r'
  SETITEM: 0x73, // 's'
  TUPLE: 0x74, // 't'
  SETITEMS: 0x75, // 'u'
  EMPTY_LIST: 0x5d, // ']'
  EMPTY_TUPLE: 0x29, // ')'
  EMPTY_DICT: 0x7d, // '}'
  BINBYTES: 0x42, // 'B'  protocol 3: 4-byte length + bytes
  SHORT_BINBYTES: 0x43, // 'C'  protocol 3: 1-byte length + bytes
  PROTO: 0x80, // protocol 2+: version byte
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a, // 1-byte length + little-endian two's complement
  LONG4: 0x8b, // 4-byte length + the same
  SHORT_BINUNICODE: 0x8c, // protocol 4: 1-byte length + UTF-8
  BINUNICODE8: 0x8d, // protocol 4: 8-byte length + UTF-8
  BINBYTES8: 0x8e, // protocol 4: 8-byte length + bytes
  STACK_GLOBAL: 0x93, // protocol 4: module and name from the stack
  MEMOIZE: 0x94, // protocol 4: memo[len(memo)] = top
  FRAME: 0x95, // protocol 4: 8-byte frame length (a buffering hint; ignored)
} as const;

const OP_NAMES = new Map<number, string>(Object.entries(OP).map(([name, code]) => [code, name]));

/** Reads a pickle and returns the object it describes. */
export function unpickle(data: Buffer): PyValue {
  let pos = 0;
  const stack: StackItem[] = [];
  const memo = new Map<number, PyValue>();

  const need = (n: number): void => {
    if (pos + n > data.length) throw new UnpicklingError(`truncated pickle: needed ${n} more bytes at offset ${pos}`);
  };
  const bytes = (n: number): Buffer => {
    need(n);
    const b = data.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const u8 = (): number => bytes(1)[0]!;
  const u16 = (): number => bytes(2).readUInt16LE(0);
  const u32 = (): number => bytes(4).readUInt32LE(0);
  const u64 = (): number => {
    const n = bytes(8).readBigUInt64LE(0);
    if (n > BigInt(data.length)) throw new UnpicklingError(`length ${n} at offset ${pos - 8} is longer than the file`);
    return Number(n);
  };
  /** A protocol-0 argument: everything up to the next newline (which is consumed). */
  const line = (): Buffer => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) throw new UnpicklingError(`truncated pickle: no end of line after offset ${pos}`);
    const b = data.subarray(pos, end);
    pos = end + 1;
    return b;
  };

  const push = (v: PyValue): void => void stack.push(v);
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined) throw new UnpicklingError('stack underflow: the pickle is damaged');
    if (v === MARK) throw new UnpicklingError('unexpected mark on the stack: the pickle is damaged');
    return v;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) throw new UnpicklingError('empty stack: the pickle is damaged');
    return v;
  };
  /** Pops everything above the topmost mark, and the mark. */
  const popMark = (): PyValue[] => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) throw new UnpicklingError('no mark on the stack: the pickle is damaged');
    const items = stack.splice(at) as PyValue[];
    items.shift();
    return items;
  };
  const memoGet = (i: number): PyValue => {
    if (!memo.has(i)) throw new UnpicklingError(`memo entry ${i} is not defined`);
    return memo.get(i)!;
  };
  const listOnTop = (): PyValue[] => {
    const target = top();
    if (!Array.isArray(target)) throw new UnpicklingError('APPEND to something that is not a list');
    return target;
  };
  const dictOnTop = (): Map<string, PyValue> => {
    const target = top();
    if (!(target instanceof Map)) throw new UnpicklingError('SETITEM to something that is not a dict');
    return target;
  };
  const setItems = (dict: Map<string, PyValue>, items: PyValue[]): void => {
    if (items.length % 2) throw new UnpicklingError('odd number of dict items');
    for (let i = 0; i < items.length; i += 2) dict.set(keyOf(items[i]!), items[i + 1]!);
  };
  const global = (module: string, name: string): PyGlobal => {
    if (!WHITELIST.has(`${module} ${name}`)) {
      throw new UnpicklingError(`the pickle refers to ${module}.${name}, which a Gratia checkpoint never contains (only datetimes and time zones are read)`);
    }
    return { type: 'global', module, name };
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case OP.PROTO: {
        const version = u8();
        if (version > 5) throw new UnpicklingError(`pickle protocol ${version} is newer than this reader knows (0-5)`);
        break;
      }
      case OP.FRAME:
        u64();
        break;
      case OP.STOP: {
        const result = pop();
        if (stack.length) throw new UnpicklingError('data left on the stack at STOP: the pickle is damaged');
        return result;
      }
      case OP.MARK:
        stack.push(MARK);
        break;
      case OP.POP:
        if (stack.pop() === undefined) throw new UnpicklingError('stack underflow: the pickle is damaged');
        break;
      case OP.POP_MARK:
        popMark();
        break;
      case OP.DUP:
        push(top());
        break;

      // --- constants and integers
      case OP.NONE:
        push(null);
        break;
      case OP.NEWTRUE:
        push(true);
        break;
      case OP.NEWFALSE:
        push(false);
        break;
      case OP.INT: {
        const text = line().toString('latin1');
        if (text === '01') push(true);
        else if (text === '00') push(false);
        else push(parseInteger(text, at));
        break;
      }
      case OP.LONG:
        push(parseInteger(line().toString('latin1').replace(/L$/, ''), at));
        break;
      case OP.BININT:
        push(bytes(4).readInt32LE(0));
        break;
      case OP.BININT1:
        push(u8());
        break;
      case OP.BININT2:
        push(u16());
        break;
      case OP.LONG1:
        push(littleEndianSigned(bytes(u8())));
        break;
      case OP.LONG4:
        push(littleEndianSigned(bytes(u32())));
        break;

      // --- strings and bytes
      case OP.STRING:
        push({ type: 'bytes', bytes: unquotePython2String(line(), at) });
        break;
      case OP.BINSTRING:
        push({ type: 'bytes', bytes: Buffer.from(bytes(u32())) });
        break;
      case OP.SHORT_BINSTRING:
        push({ type: 'bytes', bytes: Buffer.from(bytes(u8())) });
        break;
      case OP.BINBYTES:
        push({ type: 'bytes', bytes: Buffer.from(bytes(u32())) });
        break;
      case OP.SHORT_BINBYTES:
        push({ type: 'bytes', bytes: Buffer.from(bytes(u8())) });
        break;
      case OP.BINBYTES8:
        push({ type: 'bytes', bytes: Buffer.from(bytes(u64())) });
        break;
      case OP.UNICODE:
        push(rawUnicodeEscapeDecode(line()));
        break;
      case OP.BINUNICODE:
        push(utf8(bytes(u32()), at));
        break;
      case OP.SHORT_BINUNICODE:
        push(utf8(bytes(u8()), at));
        break;
      case OP.BINUNICODE8:
        push(utf8(bytes(u64()), at));
        break;

      // --- containers
      case OP.EMPTY_LIST:
        push([]);
        break;
      case OP.LIST:
        push(popMark());
        break;
      case OP.APPEND: {
        const value = pop();
        listOnTop().push(value);
        break;
      }
      case OP.APPENDS: {
        const items = popMark();
        listOnTop().push(...items);
        break;
      }
      // Tuples are read as arrays: nothing in a checkpoint depends on the difference.
      case OP.EMPTY_TUPLE:
        push([]);
        break;
      case OP.TUPLE:
        push(popMark());
        break;
      case OP.TUPLE1:
        push([pop()]);
        break;
      case OP.TUPLE2: {
        const b = pop();
        push([pop(), b]);
        break;
      }
      case OP.TUPLE3: {
        const c = pop();
        const b = pop();
        push([pop(), b, c]);
        break;
      }
      case OP.EMPTY_DICT:
        push(new Map());
        break;
      case OP.DICT: {
        const dict = new Map<string, PyValue>();
        setItems(dict, popMark());
        push(dict);
        break;
      }
      case OP.SETITEM: {
        const value = pop();
        const key = pop();
        dictOnTop().set(keyOf(key), value);
        break;
      }
      case OP.SETITEMS: {
        const items = popMark();
        setItems(dictOnTop(), items);
        break;
      }

      // --- the memo (back-references to earlier objects)
      case OP.PUT:
        memo.set(parseInteger(line().toString('latin1'), at) as number, top());
        break;
      case OP.BINPUT:
        memo.set(u8(), top());
        break;
      case OP.LONG_BINPUT:
        memo.set(u32(), top());
        break;
      case OP.MEMOIZE:
        memo.set(memo.size, top());
        break;
      case OP.GET:
        push(memoGet(parseInteger(line().toString('latin1'), at) as number));
        break;
      case OP.BINGET:
        push(memoGet(u8()));
        break;
      case OP.LONG_BINGET:
        push(memoGet(u32()));
        break;

      // --- callables: only the whitelisted ones, re-created as data
      case OP.GLOBAL: {
        const module = line().toString('utf8');
        const name = line().toString('utf8');
        push(global(module, name));
        break;
      }
      case OP.STACK_GLOBAL: {
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new UnpicklingError('STACK_GLOBAL needs two strings');
        push(global(module, name));
        break;
      }
      case OP.REDUCE: {
        const args = pop();
        const callable = pop();
        if (!Array.isArray(args)) throw new UnpicklingError('REDUCE without an argument tuple');
        if (!isGlobal(callable)) throw new UnpicklingError('REDUCE of something that is not a callable');
        push(call(callable, args));
        break;
      }
      case OP.BUILD: {
        const state = pop();
        const target = top();
        // A tzinfo subclass's __dict__ (psycopg2 keeps its offset there); nothing else has state.
        if (isTzObject(target) && state instanceof Map) {
          const offset = state.get('_offset');
          const name = state.get('_name');
          if (isTimedelta(offset)) target.tz = { kind: 'offset', offsetSeconds: timedeltaSeconds(offset) };
          if (typeof name === 'string' && target.tz.kind === 'offset') target.tz = { ...target.tz, name };
        } else if (state !== null) {
          throw new UnpicklingError(`BUILD (object state) at offset ${at} on an object that has none`);
        }
        break;
      }
      default:
        throw new UnpicklingError(
          `opcode ${OP_NAMES.get(op) ?? `0x${op.toString(16).padStart(2, '0')}`} at offset ${at} is not used by a Gratia checkpoint` +
            (op === 0x00 || op > 0x95 ? ' (is this a pickle at all?)' : ''),
        );
    }
  }
}

function isGlobal(v: PyValue): v is PyGlobal {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && v.type === 'global';
}

function isTzObject(v: PyValue): v is PyTzObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && v.type === 'tzobject';
}

export function isDatetime(v: PyValue): v is PyDatetime {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && v.type === 'datetime';
}

function isTimedelta(v: PyValue | undefined): v is PyTimedelta {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && v.type === 'timedelta';
}

export function isBytes(v: PyValue): v is PyBytes {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && v.type === 'bytes';
}

function timedeltaSeconds(t: PyTimedelta): number {
  return t.days * 86400 + t.seconds + t.microseconds / 1e6;
}

function keyOf(v: PyValue): string {
  if (typeof v === 'string') return v;
  if (isBytes(v)) return v.bytes.toString('latin1');
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  throw new UnpicklingError('a dict key that is not a string or a number');
}

function asInt(v: PyValue, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw new UnpicklingError(`${what}: expected an integer`);
}

function asText(v: PyValue, what: string): string {
  if (typeof v === 'string') return v;
  if (isBytes(v)) return v.bytes.toString('latin1');
  throw new UnpicklingError(`${what}: expected a string`);
}

function asTimeZone(v: PyValue | undefined): PyTimeZone | null {
  if (v === undefined || v === null) return null;
  if (isTzObject(v)) return v.tz;
  throw new UnpicklingError('the datetime carries a tzinfo this reader does not know');
}

/** Runs one of the whitelisted callables. */
function call(fn: PyGlobal, args: PyValue[]): PyValue {
  switch (`${fn.module} ${fn.name}`) {
    case 'datetime datetime': {
      // Pickled form: datetime(<10-byte state>[, tzinfo]). The state is big-endian year (2
      // bytes), month, day, hour, minute, second, microsecond (3 bytes); from protocol 4 on
      // the month byte's top bit carries `fold`.
      const [state, tzinfo] = args;
      if (state !== undefined && (isBytes(state) || typeof state === 'string')) {
        const b = isBytes(state) ? state.bytes : Buffer.from(state, 'latin1');
        if (b.length !== 10) throw new UnpicklingError(`a datetime state of ${b.length} bytes (expected 10)`);
        return checkedDatetime({
          type: 'datetime',
          year: b[0]! * 256 + b[1]!,
          month: b[2]! & 0x7f,
          fold: b[2]! >> 7,
          day: b[3]!,
          hour: b[4]!,
          minute: b[5]!,
          second: b[6]!,
          microsecond: (b[7]! << 16) | (b[8]! << 8) | b[9]!,
          tz: asTimeZone(tzinfo),
        });
      }
      // datetime(year, month, day[, hour[, minute[, second[, microsecond[, tzinfo]]]]])
      const n = (i: number) => (args[i] === undefined ? 0 : asInt(args[i]!, 'datetime field'));
      return checkedDatetime({ type: 'datetime', year: n(0), month: n(1), day: n(2), hour: n(3), minute: n(4), second: n(5), microsecond: n(6), fold: 0, tz: asTimeZone(args[7]) });
    }
    case 'datetime timedelta': {
      const n = (i: number) => (args[i] === undefined ? 0 : asInt(args[i]!, 'timedelta field'));
      return { type: 'timedelta', days: n(0), seconds: n(1), microseconds: n(2) };
    }
    case 'datetime timezone': {
      const [offset, name] = args;
      if (!isTimedelta(offset)) throw new UnpicklingError('datetime.timezone without a timedelta offset');
      return { type: 'tzobject', tz: { kind: 'offset', offsetSeconds: timedeltaSeconds(offset), ...(typeof name === 'string' ? { name } : {}) } };
    }
    case 'psycopg2.tz FixedOffsetTimezone': {
      // FixedOffsetTimezone(offset, name): offset in minutes (psycopg2 < 2.8) or a timedelta.
      const [offset, name] = args;
      const seconds = offset === undefined || offset === null ? 0 : isTimedelta(offset) ? timedeltaSeconds(offset) : asInt(offset, 'FixedOffsetTimezone offset') * 60;
      return { type: 'tzobject', tz: { kind: 'offset', offsetSeconds: seconds, ...(typeof name === 'string' ? { name } : {}) } };
    }
    case 'pytz _UTC':
      return { type: 'tzobject', tz: { kind: 'offset', offsetSeconds: 0, name: 'UTC' } };
    case 'pytz _p': {
      // pytz._p(zone) for a zone; pytz._p(zone, utcoffset_s, dst_s, tzname) for a localized
      // datetime's tzinfo, whose utcoffset is exactly the one in force for that datetime.
      const [zone, utcoffset, , tzname] = args;
      if (utcoffset !== undefined && utcoffset !== null) {
        return { type: 'tzobject', tz: { kind: 'offset', offsetSeconds: asInt(utcoffset, 'pytz utcoffset'), ...(tzname !== undefined ? { name: asText(tzname, 'pytz tzname') } : {}) } };
      }
      return { type: 'tzobject', tz: { kind: 'zone', zone: asText(zone ?? null, 'pytz zone') } };
    }
    case 'zoneinfo ZoneInfo._unpickle':
      return { type: 'tzobject', tz: { kind: 'zone', zone: asText(args[0] ?? null, 'ZoneInfo key') } };
    case '_codecs encode': {
      const [text, encoding] = args;
      const enc = asText(encoding ?? 'latin1', 'encoding').toLowerCase().replace(/[-_]/g, '');
      if (enc !== 'latin1' && enc !== 'iso88591') throw new UnpicklingError(`_codecs.encode with encoding ${enc}`);
      return { type: 'bytes', bytes: Buffer.from(asText(text ?? null, 'bytes'), 'latin1') };
    }
    case '__builtin__ getattr':
    case 'builtins getattr': {
      // Only getattr(<whitelisted class>, name) for a whitelisted "Class.name" (ZoneInfo._unpickle).
      const [target, attribute] = args;
      if (target === undefined || !isGlobal(target) || typeof attribute !== 'string') throw new UnpicklingError('getattr of something that is not a known class');
      const name = `${target.name}.${attribute}`;
      if (!WHITELIST.has(`${target.module} ${name}`) || target.module === '__builtin__' || target.module === 'builtins') {
        throw new UnpicklingError(`the pickle refers to ${target.module}.${name}, which a Gratia checkpoint never contains`);
      }
      return { type: 'global', module: target.module, name };
    }
    case '__builtin__ bytes':
    case 'builtins bytes':
      return { type: 'bytes', bytes: Buffer.alloc(0) };
    default:
      throw new UnpicklingError(`cannot call ${fn.module}.${fn.name}`);
  }
}

function checkedDatetime(d: PyDatetime): PyDatetime {
  const ok =
    d.year >= 1 && d.year <= 9999 && d.month >= 1 && d.month <= 12 && d.day >= 1 && d.day <= 31 &&
    d.hour <= 23 && d.minute <= 59 && d.second <= 59 && d.microsecond <= 999_999;
  if (!ok) throw new UnpicklingError(`an impossible datetime (${d.year}-${d.month}-${d.day} ${d.hour}:${d.minute}:${d.second}.${d.microsecond})`);
  return d;
}

function parseInteger(text: string, at: number): number | bigint {
  if (!/^[+-]?\d+$/.test(text.trim())) throw new UnpicklingError(`not an integer at offset ${at}: ${JSON.stringify(text)}`);
  const big = BigInt(text.trim());
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}

/** LONG1 / LONG4: little-endian two's complement of any length. */
function littleEndianSigned(b: Buffer): number | bigint {
  if (b.length === 0) return 0;
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) n -= 1n << BigInt(8 * b.length);
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

function utf8(b: Buffer, at: number): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    throw new UnpicklingError(`invalid UTF-8 in a string at offset ${at}`);
  }
}

/**
 * Protocol 0 UNICODE: Python's raw-unicode-escape. Bytes are Latin-1 characters, except
 * \uXXXX and \UXXXXXXXX escapes (Python 3 escapes backslash, NUL, CR, LF and ^Z that way, so a
 * literal backslash followed by "u" never occurs unescaped).
 */
function rawUnicodeEscapeDecode(b: Buffer): string {
  const s = b.toString('latin1');
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, four: string | undefined, eight: string | undefined) =>
    String.fromCodePoint(parseInt((four ?? eight)!, 16)),
  );
}

/**
 * Protocol 0 STRING: a Python 2 str literal as repr() wrote it, in single or double quotes,
 * with backslash escapes (\\ \' \" \n \r \t \a \b \f \v \xHH \OOO). Returns the raw bytes.
 */
function unquotePython2String(raw: Buffer, at: number): Buffer {
  const s = raw.toString('latin1');
  const q = s[0];
  if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) throw new UnpicklingError(`STRING at offset ${at} is not quoted`);
  const body = s.slice(1, -1);
  const out: number[] = [];
  const simple: Record<string, number> = { '\\': 0x5c, "'": 0x27, '"': 0x22, n: 0x0a, r: 0x0d, t: 0x09, a: 0x07, b: 0x08, f: 0x0c, v: 0x0b, '\n': -1 };
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      out.push(c.charCodeAt(0));
      continue;
    }
    const e = body[++i];
    if (e === undefined) throw new UnpicklingError(`STRING at offset ${at} ends in a backslash`);
    if (e in simple) {
      if (simple[e]! >= 0) out.push(simple[e]!);
    } else if (e === 'x') {
      const hex = body.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new UnpicklingError(`bad \\x escape in STRING at offset ${at}`);
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (/[0-7]/.test(e)) {
      let oct = e;
      while (oct.length < 3 && /[0-7]/.test(body[i + 1] ?? '')) oct += body[++i];
      out.push(parseInt(oct, 8) & 0xff);
    } else {
      out.push(0x5c, e.charCodeAt(0)); // Python keeps unknown escapes as they are
    }
  }
  return Buffer.from(out);
}
