/**
 * Another commit's probe, compiled into a temporary directory, so that an A/B bench can run it
 * beside this build in one run (the machine is shared and its speed drifts between runs: only
 * figures taken side by side compare). Its sql/ and package.json come along: its own `migrate`
 * installs its own schema version, and its CLI reads its own version.
 */
import { cpSync, existsSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './env';

export interface OtherBuild {
  commit: string;
  /** Its CLI and collector scripts (dist/src/cli/bin.js and dist/src/tools/collector/main.js, or where an older commit built them). */
  cli: string;
  collectorMain: string;
}

/** git archive of `commit` (src, sql, tsconfig.json, package.json) into `dir`, then tsc. */
export function buildCommit(commit: string, dir: string): OtherBuild {
  execFileSync('sh', ['-c', `git -C "$0" archive "$1" src sql tsconfig.json package.json | tar -x -C "$2"`, ROOT, commit, dir]);
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'tsconfig.baseline.json'), JSON.stringify({ extends: './tsconfig.json', include: ['src/**/*.ts'] }));
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.baseline.json')], { stdio: 'inherit' });
  // As `npm run build` does: the dashboard's static files sit beside the compiled server.
  // (Commits before the tree got its folders kept them at the top of src/.)
  for (const web of [join('src', 'web'), join('src', 'features', 'dashboard', 'web')]) {
    if (existsSync(join(dir, web))) cpSync(join(dir, web), join(dir, 'dist', web), { recursive: true });
  }
  const commitId = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', commit], { encoding: 'utf8' }).trim();
  const built = (...candidates: string[][]) => candidates.map((parts) => join(dir, 'dist', 'src', ...parts)).find((path) => existsSync(path))!;
  return { commit: commitId, cli: built(['cli', 'bin.js'], ['cli.js']), collectorMain: built(['tools', 'collector', 'main.js'], ['collector', 'main.js']) };
}
