/**
 * Identity files of the old Gratia probe: a passwd-format file (uid -> user name), a
 * group-format file (gid -> group name, Gratia's UnixGidListFileName) and the site's
 * user-vo-map (user -> VO, with "#voi" / "#VOc" lines giving the reportable VO names).
 *
 * Parsing is pure; `IdentityFiles` reads the files and reads them again when they change
 * (checked at most every few seconds), so an operator's edit takes effect without a restart.
 */
import { readFileSync, statSync } from 'node:fs';
import { errorMessage } from '../lib';

export interface VoMapping {
  vo: string;
  reportable: string;
}

/** Lookups the record mapping uses; every one may answer undefined. */
export interface IdentityTables {
  userName(uid: number): string | undefined;
  groupName(gid: number): string | undefined;
  voOf(localUser: string): VoMapping | undefined;
}

export const NO_IDENTITY_FILES: IdentityTables = {
  userName: () => undefined,
  groupName: () => undefined,
  voOf: () => undefined,
};

/** passwd and group files share the layout "name:x:id:..." (id in the third field). */
export function parseIdFile(text: string): Map<number, string> {
  const byId = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (!line.trim() || line.trimStart().startsWith('#')) continue;
    const [name, , id] = line.split(':');
    const n = Number(id);
    if (name && id !== undefined && id !== '' && Number.isInteger(n) && !byId.has(n)) byId.set(n, name.trim());
  }
  return byId;
}

/**
 * user-vo-map: "<localuser> <vo>" lines; "#voi vo1 vo2 ..." and "#VOc VO1 VO2 ..." give, for
 * the vo in the same position, the name to report (ReportableVOName).
 */
export function parseUserVoMap(text: string): Map<string, VoMapping> {
  const users = new Map<string, string>();
  let voi: string[] = [];
  let voc: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const words = line.split(/\s+/);
    if (words[0] === '#voi') voi = words.slice(1);
    else if (words[0] === '#VOc') voc = words.slice(1);
    else if (line.startsWith('#')) continue;
    else if (words.length >= 2 && !users.has(words[0]!)) users.set(words[0]!, words[1]!);
  }
  const reportable = new Map<string, string>();
  voi.forEach((vo, i) => {
    if (voc[i]) reportable.set(vo, voc[i]!);
  });
  const out = new Map<string, VoMapping>();
  for (const [user, vo] of users) out.set(user, { vo, reportable: reportable.get(vo) ?? vo });
  return out;
}

export function tablesFrom(parts: { passwd?: Map<number, string>; group?: Map<number, string>; userVo?: Map<string, VoMapping> }): IdentityTables {
  return {
    userName: (uid) => parts.passwd?.get(uid),
    groupName: (gid) => parts.group?.get(gid),
    voOf: (user) => parts.userVo?.get(user),
  };
}

/** A file parsed once and again whenever its modification time or size changes. */
class WatchedFile<T> {
  private value: T | undefined;
  private stamp = '';
  private checkedAt = 0;

  constructor(
    readonly path: string,
    private readonly parse: (text: string) => T,
    private readonly onProblem: (message: string) => void,
  ) {}

  get(now = Date.now()): T | undefined {
    if (now - this.checkedAt < 2000 && this.value !== undefined) return this.value;
    this.checkedAt = now;
    try {
      const s = statSync(this.path);
      const stamp = `${s.mtimeMs}:${s.size}`;
      if (stamp !== this.stamp) {
        this.value = this.parse(readFileSync(this.path, 'utf8'));
        this.stamp = stamp;
      }
    } catch (err) {
      if (this.stamp !== 'missing') this.onProblem(`cannot read ${this.path}: ${errorMessage(err)}`);
      this.stamp = 'missing';
      this.value = undefined;
    }
    return this.value;
  }
}

export interface IdentityFileOptions {
  passwdFile?: string;
  groupFile?: string;
  userVoMapFile?: string;
}

/** The identity files of a running probe, re-read when they change. */
export class IdentityFiles implements IdentityTables {
  private readonly passwd?: WatchedFile<Map<number, string>>;
  private readonly group?: WatchedFile<Map<number, string>>;
  private readonly userVo?: WatchedFile<Map<string, VoMapping>>;

  constructor(
    options: IdentityFileOptions,
    onProblem: (message: string) => void,
    private readonly clock: () => number = Date.now,
  ) {
    if (options.passwdFile) this.passwd = new WatchedFile(options.passwdFile, parseIdFile, onProblem);
    if (options.groupFile) this.group = new WatchedFile(options.groupFile, parseIdFile, onProblem);
    if (options.userVoMapFile) this.userVo = new WatchedFile(options.userVoMapFile, parseUserVoMap, onProblem);
  }

  userName(uid: number): string | undefined {
    return this.passwd?.get(this.clock())?.get(uid);
  }

  groupName(gid: number): string | undefined {
    return this.group?.get(this.clock())?.get(gid);
  }

  voOf(user: string): VoMapping | undefined {
    return this.userVo?.get(this.clock())?.get(user);
  }
}
