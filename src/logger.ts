/**
 * Logging with winston: human-readable text by default, one JSON object a line with
 * `log.format: json`. Log to stderr so stdout stays free for command output (status, demo).
 * Never pass secrets in here: URLs go through redactUrl() first.
 */
import winston from 'winston';

export type Logger = winston.Logger;

export function createLogger(options: { level: string; format: 'text' | 'json' }): Logger {
  const format =
    options.format === 'json'
      ? winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: false }), winston.format.json())
      : winston.format.combine(
          winston.format.timestamp(),
          winston.format.printf(({ timestamp, level, message, ...meta }) => {
            const extra = Object.keys(meta).length ? ' ' + JSON.stringify(meta) : '';
            return `${timestamp} ${level.padEnd(5)} ${message}${extra}`;
          }),
        );
  return winston.createLogger({
    level: options.level,
    format,
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
}

/** A logger that drops everything (tests, benchmarks). */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
