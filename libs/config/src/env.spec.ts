import { byteSize, commonEnv, EnvironmentError, loadEnv, natsServers, share, str } from './env';

describe('loadEnv', () => {
  const spec = { ...commonEnv, DATABASE_URL: str({ desc: 'PostgreSQL URL, postgres://user@host:5432/db' }) };

  it('returns typed values with defaults filled in', () => {
    const env = loadEnv('demo', spec, { HTTP_PORT: '3010', DATABASE_URL: 'postgres://x@y/z' });
    expect(env.HTTP_PORT).toBe(3010);
    expect(env.NATS_URL).toBe('nats://127.0.0.1:4222');
    expect(env.LOG_LEVEL).toBe('info');
  });

  it('names every missing or invalid variable and what is expected', () => {
    let caught: unknown;
    try {
      loadEnv('tsdb-writer', spec, { HTTP_PORT: 'eighty', LOG_LEVEL: 'loud' });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(EnvironmentError);
    const message = (caught as Error).message;
    expect(message).toContain('tsdb-writer cannot start');
    expect(message).toContain('HTTP_PORT="eighty" is invalid');
    expect(message).toContain('LOG_LEVEL="loud" is invalid');
    expect(message).toContain('DATABASE_URL is not set (expected: PostgreSQL URL');
  });
});

describe('natsServers', () => {
  it('splits a comma-separated list and drops blanks', () => {
    expect(natsServers('nats://a:1, nats://b:2,,')).toEqual(['nats://a:1', 'nats://b:2']);
  });
});

describe('byteSize', () => {
  const spec = { STORAGE: byteSize({ default: undefined, desc: 'a size, e.g. 768MB' }) };

  it('reads a size with its unit as bytes (powers of 1,024), and unset as none', () => {
    expect(loadEnv('demo', spec, { STORAGE: '768MB' }).STORAGE).toBe(768 * 1024 ** 2);
    expect(loadEnv('demo', spec, { STORAGE: '1.5 gb' }).STORAGE).toBe(1.5 * 1024 ** 3);
    expect(loadEnv('demo', spec, {}).STORAGE).toBeUndefined();
  });

  it.each(['768', '-1GB', '0MB', 'lots', '8 GiB', ''])(
    'refuses %p, naming the variable and the form',
    (value) => {
      expect(() => loadEnv('demo', spec, { STORAGE: value })).toThrow(
        `STORAGE="${value}" is invalid: "${value}" is not a size: write a number and a unit, e.g. 768MB or 40GB`,
      );
    },
  );
});

describe('share', () => {
  const spec = { RATIO: share({ default: 0.5, desc: 'a share, e.g. 0.5' }) };

  it('reads a number from 0 to 1, and unset as its default', () => {
    expect(loadEnv('demo', spec, { RATIO: '0.25' }).RATIO).toBe(0.25);
    expect(loadEnv('demo', spec, { RATIO: '0' }).RATIO).toBe(0);
    expect(loadEnv('demo', spec, { RATIO: '1' }).RATIO).toBe(1);
    expect(loadEnv('demo', spec, {}).RATIO).toBe(0.5);
  });

  it.each(['1.5', '-0.1', 'half', '50%', ''])('refuses %p, naming the variable and the form', (value) => {
    expect(() => loadEnv('demo', spec, { RATIO: value })).toThrow(
      `RATIO="${value}" is invalid: "${value}" is not a share: write a number from 0 to 1, e.g. 0.5`,
    );
  });
});
