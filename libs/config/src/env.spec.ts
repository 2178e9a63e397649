import { commonEnv, EnvironmentError, loadEnv, natsServers, str } from './env';

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
