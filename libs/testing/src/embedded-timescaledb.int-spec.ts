import { Client } from 'pg';
import { startEmbeddedTimescaleDb, type EmbeddedTimescaleDb } from './embedded-timescaledb';

/** The embedded TimescaleDB's one session, taken by connections a transaction at a time. */
describe('embedded TimescaleDB', () => {
  let db: EmbeddedTimescaleDb;
  const connect = async () => {
    const c = new Client({ connectionString: db.url });
    await c.connect();
    return c;
  };
  /** Two connections, the first inside a transaction that has inserted `n` into turns. */
  const oneInTransaction = async (n: number) => {
    const [a, b] = [await connect(), await connect()];
    await a.query('BEGIN');
    await a.query('INSERT INTO turns VALUES ($1)', [n]);
    return { a, b };
  };

  beforeAll(async () => {
    db = await startEmbeddedTimescaleDb();
    const c = await connect();
    await c.query('CREATE TABLE turns (n int)');
    await c.end();
  });
  afterAll(() => db?.stop());

  it('names PostgreSQL and TimescaleDB, and makes hypertables', async () => {
    expect(db.version).toMatch(/^PostgreSQL \d+.*TimescaleDB \d+\.\d+/);
    const c = await connect();
    try {
      await c.query('CREATE TABLE h (ts timestamptz NOT NULL, v float8)');
      const { rows } = await c.query(`SELECT create_hypertable('h', 'ts')::text AS t`);
      expect(rows[0].t).toContain('h');
    } finally {
      await c.end();
    }
  });

  it('keeps another connection out of a transaction until it ends, and never shows its uncommitted rows', async () => {
    const { a, b } = await oneInTransaction(1);
    try {
      let answered = false;
      const read = b.query<{ n: string }>('SELECT count(*)::text AS n FROM turns').then((r) => {
        answered = true;
        return r.rows[0]!.n;
      });
      await new Promise((r) => setTimeout(r, 300));
      expect(answered).toBe(false);
      await a.query('INSERT INTO turns VALUES (2)');
      await a.query('COMMIT');
      expect(await read).toBe('2');
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('rolls back the transaction of a connection that goes away in it, and lets the others go on', async () => {
    const { a, b } = await oneInTransaction(3);
    try {
      const read = b.query<{ n: string }>('SELECT count(*)::text AS n FROM turns WHERE n = 3');
      a.on('error', () => undefined); // its socket is cut below, on purpose
      (a as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      expect((await read).rows[0]!.n).toBe('0');
    } finally {
      await b.end();
      await a.end().catch(() => undefined);
    }
  });
});
