import bytes from 'bytes';
import {
  cleanEnv,
  EnvError,
  EnvMissingError,
  makeValidator,
  num,
  port,
  str,
  url,
  bool,
  type ValidatorSpec,
} from 'envalid';

export { bool, num, port, str, url };
export type EnvSpec = Record<string, ValidatorSpec<unknown>>;

const SIZE = /^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB)\s*$/i;

/** A size with its unit, such as 768MB or 40GB (powers of 1,024), read as a number of bytes. */
export const byteSize = makeValidator<number>((s: string) => {
  const n = SIZE.test(s) ? bytes.parse(s) : null;
  if (n === null || !(n > 0))
    throw new EnvError(`"${s}" is not a size: write a number and a unit, e.g. 768MB or 40GB`);
  return n;
});

/** A share between 0 and 1, such as 0.5. */
export const share = makeValidator<number>((s: string) => {
  const n = /^\s*\d+(\.\d+)?\s*$/.test(s) ? Number(s) : NaN;
  if (!(n >= 0 && n <= 1)) throw new EnvError(`"${s}" is not a share: write a number from 0 to 1, e.g. 0.5`);
  return n;
});

/** The environment was wrong: the message names every variable and what is expected. */
export class EnvironmentError extends Error {
  constructor(
    readonly app: string,
    readonly problems: string[],
  ) {
    super(`${app} cannot start, its environment is wrong:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'EnvironmentError';
  }
}

/** Variables every service reads. */
export const commonEnv = {
  NATS_URL: str({
    default: 'nats://127.0.0.1:4222',
    desc: 'Comma-separated NATS server URLs, e.g. nats://n1:4222,nats://n2:4222',
  }),
  HTTP_PORT: port({ desc: 'Port of the HTTP server for /healthz, /readyz, /metrics and the API' }),
  LOG_LEVEL: str({
    default: 'info',
    choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    desc: 'pino log level',
  }),
  SHUTDOWN_GRACE_MS: num({ default: 25_000, desc: 'Time allowed to drain on SIGTERM before exit' }),
  OTEL_EXPORTER_OTLP_ENDPOINT: str({ default: '', desc: 'OTLP endpoint; tracing is off when empty' }),
};

/**
 * Validates `source` against `spec` once, at start. Throws an {@link EnvironmentError} that
 * lists each missing or malformed variable with its description, instead of envalid's
 * default of printing and exiting, so callers (and tests) decide what to do.
 */
export function loadEnv<S extends EnvSpec>(app: string, spec: S, source: NodeJS.ProcessEnv = process.env) {
  return cleanEnv(source, spec, {
    reporter: ({ errors }) => {
      const names = Object.keys(errors);
      if (names.length === 0) return;
      const problems = names.map((name) => {
        const err = errors[name]!;
        const desc = (spec[name] as { desc?: string } | undefined)?.desc;
        const expected = desc ? ` (expected: ${desc})` : '';
        if (err instanceof EnvMissingError) return `${name} is not set${expected}`;
        const value = source[name];
        return `${name}="${value}" is invalid: ${err instanceof EnvError ? err.message : String(err)}${expected}`;
      });
      throw new EnvironmentError(app, problems);
    },
  });
}

export function natsServers(natsUrl: string): string[] {
  return natsUrl
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}
