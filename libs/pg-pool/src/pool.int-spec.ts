import { startPostgres, type PostgresHandle } from '@iot/testing';
import type { Pool } from 'pg';
import { openPool } from './pool';

describe('openPool (real PostgreSQL)', () => {
  let pg: PostgresHandle;
  const pools: Pool[] = [];
  const backends = (name: string) =>
    pg.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, [name]);

  beforeAll(async () => {
    pg = await startPostgres();
  });
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.end()));
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('names its connections in pg_stat_activity, unless the URL gives an application_name', async () => {
    const named = openPool(pg.url, { max: 2, name: 'pool-spec' }, () => undefined);
    const url = new URL(pg.url);
    url.searchParams.set('application_name', 'from-the-url');
    const overridden = openPool(url.toString(), { max: 2, name: 'pool-spec-unused' }, () => undefined);
    pools.push(named, overridden);
    await named.query('SELECT 1');
    await overridden.query('SELECT 1');
    expect(await backends('pool-spec')).toHaveLength(1);
    expect(await backends('from-the-url')).toHaveLength(1);
    expect(await backends('pool-spec-unused')).toHaveLength(0);
  });

  it('keeps its connections through a lull longer than ten seconds', async () => {
    const pool = openPool(pg.url, { max: 2, name: 'pool-lull' }, () => undefined);
    pools.push(pool);
    await Promise.all([pool.query('SELECT pg_sleep(0.05)'), pool.query('SELECT pg_sleep(0.05)')]);
    const before = await backends('pool-lull');
    expect(before).toHaveLength(2);
    // pg-pool's default closes a connection idle for 10 s.
    await new Promise((r) => setTimeout(r, 11_000));
    expect(await backends('pool-lull')).toEqual(before);
    await pool.query('SELECT 1');
    expect(await backends('pool-lull')).toEqual(before);
  }, 30_000);

  it('hears an idle connection the server ends, and the next query runs on a new one', async () => {
    const heard: Error[] = [];
    const pool = openPool(pg.url, { max: 1, name: 'pool-terminated' }, (e) => heard.push(e));
    pools.push(pool);
    await pool.query('SELECT 1');
    const [{ pid }] = await backends('pool-terminated');
    await pg.query('SELECT pg_terminate_backend($1)', [pid]);
    for (let i = 0; i < 100 && heard.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(heard.map((e) => e.message)).toEqual([
      expect.stringContaining('terminating connection due to administrator command'),
    ]);
    expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    const after = await backends('pool-terminated');
    expect(after).toHaveLength(1);
    expect(after[0]!.pid).not.toBe(pid);
  });
});
