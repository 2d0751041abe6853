/**
 * `dcache-probe hash-password`: a password hash for metrics.usersFile (src/service/http-auth.ts); the password is read from the terminal or stdin, never a flag.
 */
import type { Command } from 'commander';
import { ConfigError } from '../config/schema';
import { guarded } from './options';

/** A password from the terminal (typed twice, not echoed) or the first line of stdin: never a flag. */
async function readPassword(): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    let text = '';
    for await (const chunk of stdin) text += chunk;
    return text.split(/\r?\n/)[0]!;
  }
  const ask = (prompt: string) =>
    new Promise<string>((resolve, reject) => {
      let typed = '';
      const done = () => {
        stdin.off('data', onData).setRawMode(false).pause();
        process.stderr.write('\n');
      };
      const onData = (chunk: string) => {
        for (const c of chunk) {
          if (c === '\r' || c === '\n') return done(), resolve(typed);
          if (c === '\u0003') return done(), reject(new ConfigError('cancelled'));
          typed = c === '\u007f' || c === '\b' ? typed.slice(0, -1) : typed + c;
        }
      };
      process.stderr.write(prompt);
      stdin.setEncoding('utf8');
      stdin.setRawMode(true).resume().on('data', onData);
    });
  const password = await ask('password: ');
  if ((await ask('again: ')) !== password) throw new ConfigError('the two passwords differ');
  return password;
}

export function registerHashPassword(program: Command): void {
  program
    .command('hash-password')
    .description('make a password hash for metrics.usersFile (the dashboard\'s users): asks twice on a terminal, else reads the first line of stdin')
    .option('--user <name>', 'print the whole line of the users file, "name:hash"')
    .action((options) =>
      guarded(async () => {
        const auth = await import('../service/http-auth.js');
        if (options.user !== undefined && !auth.validUserName(options.user)) throw new ConfigError(`--user: "${options.user}" cannot be a user name (no spaces or colons)`);
        const password = await readPassword();
        if (password.length < auth.MIN_PASSWORD_LENGTH) throw new ConfigError(`the password is too short: use ${auth.MIN_PASSWORD_LENGTH} or more characters`);
        const hash = await auth.hashPassword(password);
        process.stdout.write(`${options.user === undefined ? '' : options.user + ':'}${hash}\n`);
      }),
    );
}
