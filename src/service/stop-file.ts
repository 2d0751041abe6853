/**
 * Gratia's StopFileName: while the file exists nothing is claimed (rows stay queued); said
 * once when it appears and once when it goes.
 */
import { existsSync } from 'node:fs';
import type { Logger } from '../logger';

export class StopFile {
  private seen = false;

  constructor(
    private readonly file: string | undefined,
    private readonly log: Logger,
  ) {}

  /** Whether the file is there now (and says so when that changed). */
  present(): boolean {
    const file = this.file;
    const present = file !== undefined && existsSync(file);
    if (present !== this.seen) {
      this.seen = present;
      if (present) this.log.warn('stop file present: not delivering until it is removed', { file });
      else if (file) this.log.info('stop file removed: delivering again', { file });
    }
    return present;
  }
}
