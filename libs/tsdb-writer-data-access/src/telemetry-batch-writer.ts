import { DatabaseError, type Connection, type Pool, type PoolClient, type Submittable } from 'pg';
import { ROLLUP_LOCK_KEY, type NormalizedTelemetry } from '@iot/contracts';
import { openPool } from '@iot/pg-pool';

export type StoreEngine = 'timescaledb' | 'postgres-partitions';

/** A text as an element of a PostgreSQL array literal: quoted, with `\` and `"` escaped. */
function element(text: string): string {
  return ESCAPED.test(text) ? `"${text.replace(ESCAPED_ALL, '\\$&')}"` : `"${text}"`;
}
const ESCAPED = /[\\"]/;
const ESCAPED_ALL = /[\\"]/g;

/** The separator of a series key: PostgreSQL refuses a NUL in a text, so none is stored in one. */
const SEP = '\u0000';

/** Most series ids a writer keeps (about 1 MB per 10,000); past it the cache starts again. */
const SERIES_CACHE_MAX = 100_000;

/** The series of one metric, by unit: nearly always one, so a chain rather than a map. */
interface UnitSeries {
  unit: string;
  id: number;
  next: UnitSeries | undefined;
}

/**
 * Ids by tenant, device and metric, then unit: looked up by the texts a message holds, none
 * joined (100,000 series take 12 MB of heap, against 17 for one map by joined key and 26 with
 * a map per metric).
 */
type SeriesTree = Map<string, Map<string, Map<string, UnitSeries>>>;

/** The id of `unit`'s series in a metric's chain, if met. */
function idOfUnit(chain: UnitSeries | undefined, unit: string): number | undefined {
  for (let s = chain; s; s = s.next) if (s.unit === unit) return s.id;
  return undefined;
}

/** The map under `key` in `map`, made when there is none. */
function branch<V>(map: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let next = map.get(key);
  if (!next) map.set(key, (next = new Map()));
  return next;
}

/**
 * The ids of the series (tenant, device, metric, unit) the writer has met, from
 * `telemetry_series` (migration SeriesKey1765000000000). `resolve` numbers the series of a
 * write it does not know yet, in one statement for all of them, and answers each point's id.
 */
export class SeriesIds {
  private tree: SeriesTree = new Map();
  private size = 0;

  constructor(private readonly max = SERIES_CACHE_MAX) {}

  /** A series as one text, for the series `resolve` must ask the database for. */
  private static key(tenant: string, device: string, metric: string, unit: string): string {
    return tenant + SEP + device + SEP + metric + SEP + unit;
  }

  /** The id of a series `resolve` has seen. */
  id(tenant: string, device: string, metric: string, unit: string): number {
    const id = idOfUnit(this.tree.get(tenant)?.get(device)?.get(metric), unit);
    if (id === undefined) throw new Error(`series ${tenant}/${device}/${metric} [${unit}] not resolved`);
    return id;
  }

  private remember(tenant: string, device: string, metric: string, unit: string, id: number): void {
    const metrics = branch(branch(this.tree, tenant), device);
    const chain = metrics.get(metric);
    if (idOfUnit(chain, unit) !== undefined) return;
    metrics.set(metric, { unit, id, next: chain });
    this.size++;
  }

  /**
   * The series id of every point of the messages, in their order: those not met yet are
   * inserted (or found, when another writer inserted them) in one statement. A series another
   * writer is inserting at that moment is found by the next try. The cache is read with the
   * message's own texts: no key is built for a series it holds (building one per point, twice,
   * was 12% of the writer's CPU in a profile of `./platform bench stages`, 2026-12-06).
   */
  async resolve(
    client: Pick<PoolClient, 'query'>,
    messages: readonly NormalizedTelemetry[],
  ): Promise<Int32Array> {
    if (this.size > this.max) {
      this.tree = new Map();
      this.size = 0;
    }
    let points = 0;
    for (const m of messages) points += m.points.length;
    const ids = new Int32Array(points);
    /** The series not in the cache, by key, and the indexes of their points. */
    const missing = new Map<string, { series: [string, string, string, string]; at: number[] }>();
    let i = 0;
    for (const m of messages) {
      const metrics = this.tree.get(m.tenant)?.get(m.device);
      for (const p of m.points) {
        const id = idOfUnit(metrics?.get(p.metric), p.unit);
        if (id !== undefined) ids[i] = id;
        else {
          const key = SeriesIds.key(m.tenant, m.device, p.metric, p.unit);
          let entry = missing.get(key);
          if (!entry) missing.set(key, (entry = { series: [m.tenant, m.device, p.metric, p.unit], at: [] }));
          entry.at.push(i);
        }
        i++;
      }
    }
    for (let attempt = 0; missing.size > 0; attempt++) {
      if (attempt === 3) throw new Error(`${missing.size} series could not be numbered after 3 tries`);
      const rows = [...missing].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, e]) => e.series);
      const { rows: found } = await client.query<{
        series_id: number;
        tenant_id: string;
        device_id: string;
        metric: string;
        unit: string;
      }>(
        RESOLVE_SERIES,
        [0, 1, 2, 3].map((k) => rows.map((r) => r[k])),
      );
      for (const f of found) {
        const key = SeriesIds.key(f.tenant_id, f.device_id, f.metric, f.unit);
        const entry = missing.get(key);
        if (!entry) continue;
        this.remember(f.tenant_id, f.device_id, f.metric, f.unit, f.series_id);
        for (const at of entry.at) ids[at] = f.series_id;
        missing.delete(key);
      }
    }
    return ids;
  }
}

/**
 * The series given, numbered: those new inserted (in one order in every writer, so that two
 * inserting the same ones wait for each other instead of deadlocking), those already there
 * read. One that another transaction inserts meanwhile is in neither until it commits.
 */
const RESOLVE_SERIES = `
  WITH k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(tenant_id, device_id, metric, unit)),
  ins AS (
    INSERT INTO telemetry_series (tenant_id, device_id, metric, unit)
    SELECT tenant_id, device_id, metric, unit FROM k
    ON CONFLICT DO NOTHING
    RETURNING series_id, tenant_id, device_id, metric, unit)
  SELECT series_id, tenant_id, device_id, metric, unit FROM ins
  UNION ALL
  SELECT s.series_id, s.tenant_id, s.device_id, s.metric, s.unit
  FROM telemetry_series s JOIN k USING (tenant_id, device_id, metric, unit)`;

/**
 * The rows of one write, one per point, as the five columns the insert takes, each sent as
 * one PostgreSQL array literal (`{1,2}`, `{"a","b"}`). This is the writer's path after a
 * stored row: no object per row, and a message's times are turned into text once for all its
 * points.
 */
export class TelemetryColumns {
  private readonly series: number[] = [];
  private readonly ts: string[] = [];
  private readonly value: string[] = [];
  private readonly quality: string[] = [];
  private readonly receivedAt: string[] = [];

  constructor(private readonly ids: Int32Array) {}

  /** `ids`: each point's series id, in order (`SeriesIds.resolve`). */
  static of(messages: readonly NormalizedTelemetry[], ids: Int32Array): TelemetryColumns {
    const c = new TelemetryColumns(ids);
    for (const m of messages) c.addMessage(m);
    return c;
  }

  get rows(): number {
    return this.series.length;
  }

  /** Its points take the next ids in order: only `of`, which feeds every message once, calls it. */
  private addMessage(m: NormalizedTelemetry): void {
    const ts = String(m.ts);
    const receivedAt = String(m.receivedAt);
    for (const p of m.points) {
      this.series.push(this.ids[this.series.length]!);
      this.ts.push(ts);
      this.value.push(String(p.value));
      this.quality.push(element(p.quality));
      this.receivedAt.push(receivedAt);
    }
  }

  /** The parameters $1..$5 of the insert. */
  params(): string[] {
    const cols = [this.series, this.ts, this.value, this.quality, this.receivedAt];
    return cols.map((c) => `{${c.join(',')}}`);
  }
}

/** Seconds from the Unix epoch to PostgreSQL's (2000-01-01), as `to_timestamp` subtracts them. */
const PG_EPOCH_S = 946_684_800;
/** COPY carries the timestamps of 1970-01-01 up to 2100-01-01; a batch with others is inserted. */
const COPY_TS_MAX_MS = Date.UTC(2100, 0, 1);
const FIVE_MINUTES_US = 300_000_000;

/** `rint`: to the nearest integer, ties to even, as PostgreSQL rounds a timestamp's microseconds. */
function rint(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Epoch milliseconds as the microseconds since 2000 that `to_timestamp(ms / 1000.0)` stores,
 * computed the same way in the same IEEE doubles, so that a row written by COPY and the same
 * row sent again through the INSERT meet on the primary key. Undefined outside the years
 * 1970-2099, where the doubles would no longer hold every microsecond.
 */
export function copyMicros(ms: number): number | undefined {
  if (!(ms >= 0 && ms < COPY_TS_MAX_MS)) return undefined;
  return rint((ms / 1000 - PG_EPOCH_S) * 1e6);
}

/** Microseconds since 2000 as timestamptz text (ISO 8601, UTC), to the microsecond. */
function isoFromPgMicros(us: number): string {
  const whole = Math.floor(us / 1e6);
  const head = new Date((whole + PG_EPOCH_S) * 1000).toISOString().slice(0, 19);
  return `${head}.${String(us - whole * 1e6).padStart(6, '0')}Z`;
}

/** The columns COPY writes, in their order in each row. */
const COPY_COLUMNS = '(series_id, ts, value, quality, received_at)';
const COPY_FIELDS = 5;
/** The binary format's header: its signature, no flags, no header extension. */
const COPY_BINARY_HEADER = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
const TWO_32 = 2 ** 32;

/**
 * The rows of one write as the body of a `COPY ... FROM STDIN (FORMAT binary)`, one row per
 * point, and on plain PostgreSQL the write's 5-minute buckets, for `lateBucketsStatement`.
 * Binary, not text: PostgreSQL takes a timestamp's eight bytes and a double's as they are
 * instead of parsing ISO text and decimals (9% less of its CPU per row, 2026-12-04), and
 * no text needs escaping. `of` returns undefined for a batch with a timestamp outside
 * `copyMicros`' years; such a batch takes the INSERT.
 */
export class TelemetryCopy {
  rows = 0;
  private buf: Buffer;
  private at = 0;
  /** The write's buckets (microseconds since 2000), on plain PostgreSQL. */
  private readonly buckets: Set<number> | undefined;

  private constructor(
    withBuckets: boolean,
    points: number,
    private readonly ids: Int32Array,
  ) {
    this.buckets = withBuckets ? new Set() : undefined;
    // About 50 bytes a row for the usual quality; grown when longer ones need it.
    this.buf = Buffer.allocUnsafe(COPY_BINARY_HEADER.length + 2 + points * 64);
    this.at = COPY_BINARY_HEADER.copy(this.buf, 0);
  }

  static of(
    messages: readonly NormalizedTelemetry[],
    withBuckets: boolean,
    ids: Int32Array,
  ): TelemetryCopy | undefined {
    let points = 0;
    for (const m of messages) points += m.points.length;
    const c = new TelemetryCopy(withBuckets, points, ids);
    for (const m of messages) if (!c.addMessage(m)) return undefined;
    c.room(2);
    c.at = c.buf.writeInt16BE(-1, c.at); // the trailer
    return c;
  }

  /** The COPY body, header to trailer. */
  get data(): Buffer {
    return this.buf.subarray(0, this.at);
  }

  private addMessage(m: NormalizedTelemetry): boolean {
    const tsUs = copyMicros(m.ts);
    const receivedUs = copyMicros(m.receivedAt);
    if (tsUs === undefined || receivedUs === undefined) return false;
    for (const p of m.points) {
      this.room(2);
      this.at = this.buf.writeInt16BE(COPY_FIELDS, this.at);
      this.integer(this.ids[this.rows++]!);
      this.micros(tsUs);
      this.double(p.value);
      this.text(p.quality);
      this.micros(receivedUs);
    }
    // date_bin('5 minutes', ts, '2000-01-01'): whole 5-minute steps from PostgreSQL's epoch.
    this.buckets?.add(Math.floor(tsUs / FIVE_MINUTES_US) * FIVE_MINUTES_US);
    return true;
  }

  /** A text field: its length in bytes, then its UTF-8 (PostgreSQL refuses a NUL in it). */
  private text(value: string): void {
    this.room(4 + 3 * value.length); // a UTF-16 unit takes at most three bytes in UTF-8
    const n = this.buf.write(value, this.at + 4);
    this.buf.writeInt32BE(n, this.at);
    this.at += 4 + n;
  }

  /** An integer field: four bytes. */
  private integer(value: number): void {
    this.room(8);
    this.at = this.buf.writeInt32BE(4, this.at);
    this.at = this.buf.writeInt32BE(value, this.at);
  }

  /** A timestamptz field: eight bytes, microseconds since 2000. */
  private micros(us: number): void {
    this.room(12);
    this.at = this.buf.writeInt32BE(8, this.at);
    this.at = this.buf.writeInt32BE(Math.floor(us / TWO_32), this.at);
    this.at = this.buf.writeUInt32BE(us >>> 0, this.at);
  }

  /** A double precision field: eight bytes, IEEE 754. */
  private double(value: number): void {
    this.room(12);
    this.at = this.buf.writeInt32BE(8, this.at);
    this.at = this.buf.writeDoubleBE(value, this.at);
  }

  /** Makes room for `bytes` more, doubling the buffer when it is short. */
  private room(bytes: number): void {
    if (this.at + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.at + bytes));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }

  /**
   * The statement that queues this write's late buckets for the rollup (see
   * `markLateBuckets`), with the buckets written into its text: it follows the COPY in one
   * simple query, which takes no parameters. A batch's buckets are few (one or two at a
   * steady rate), whatever its size.
   */
  lateBucketsStatement(): string {
    const list = [...(this.buckets ?? [])]
      .sort((a, b) => a - b)
      .map((bucket) => isoFromPgMicros(bucket))
      .join(',');
    return markLateBuckets(`SELECT unnest('{${list}}'::timestamptz[]) AS bucket`);
  }
}

/**
 * On plain PostgreSQL a batch takes this lock first, before it reads where the rollup is
 * materialized, and holds it until it commits: the materializer (`telemetry_5m_advance`)
 * takes it exclusively, so it cannot move past a bucket while a batch that found the bucket
 * not yet materialized is open (migration RollupRefresh1764900000000).
 */
export const ROLLUP_SHARED_LOCK = `SELECT pg_advisory_xact_lock_shared(${ROLLUP_LOCK_KEY})`;

/**
 * On plain PostgreSQL the rollup is materialized bucket by bucket once a bucket has closed
 * (migration RollupRefresh1764900000000); a write only queues for it the buckets it wrote
 * into that are materialized already (late readings), with a row lock, so the materializer
 * does not compute such a bucket before the batch has committed. Buckets in one order in
 * every transaction: no deadlock between batches. Runs after ROLLUP_SHARED_LOCK.
 */
const markLateBuckets = (buckets: string, before = '') => `
  WITH ${before}s AS (SELECT materialized_upto FROM telemetry_5m_state), b AS (${buckets})
  INSERT INTO telemetry_5m_dirty (bucket)
  SELECT b.bucket FROM b, s WHERE b.bucket < s.materialized_upto
  ORDER BY 1
  ON CONFLICT (bucket) DO UPDATE SET bucket = EXCLUDED.bucket`;

const COPY_ROWS = `COPY telemetry_points ${COPY_COLUMNS} FROM STDIN (FORMAT binary)`;

/** pg's connection, with the two copy-in messages it sends but does not declare. */
type CopyInConnection = Connection & { sendCopyFromChunk(chunk: Buffer): void; endCopyFrom(): void };

/**
 * A simple query whose COPY data goes with it: the Query message, the rows as one CopyData
 * and the CopyDone leave in one write, and the answer comes back in one round trip.
 * (pg-copy-streams sends the data only once the server's CopyInResponse has arrived, a round
 * trip more per batch, which cost the writer more than COPY saved PostgreSQL at batches of a
 * hundred messages.) If the query fails before or during the copy, the server drops the
 * CopyData and CopyDone that follow, as the protocol specifies, and answers with the error.
 * Statements after the COPY in the same text run in its implicit transaction: all or nothing.
 */
class CopyInQuery implements Submittable {
  private rows = 0;

  constructor(
    private readonly text: string,
    private readonly data: Buffer,
    private readonly done: (err: Error | undefined, rows: number) => void,
  ) {}

  submit(connection: Connection): void {
    const c = connection as CopyInConnection;
    c.stream.cork();
    try {
      c.query(this.text);
      c.sendCopyFromChunk(this.data);
      c.endCopyFrom();
    } finally {
      c.stream.uncork();
    }
  }

  handleCopyInResponse(): void {
    /* the data went with the query */
  }

  handleCommandComplete(msg: { text?: string }): void {
    const copied = /^COPY (\d+)/.exec(msg.text ?? '');
    if (copied) this.rows = Number(copied[1]);
  }

  handleReadyForQuery(): void {
    this.done(undefined, this.rows);
  }

  handleError(err: Error): void {
    this.done(err, 0);
  }

  handleEmptyQuery(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
}

/**
 * Writes the rows by COPY, the writer's common case, in one round trip: on TimescaleDB the
 * COPY alone (the continuous aggregate follows), on plain PostgreSQL the COPY and the
 * queueing of its late buckets in one transaction. Fails whole with `unique_violation`,
 * having written nothing, when a row is already stored. Resolves with the rows written, once
 * committed.
 */
export function copyRows(client: PoolClient, copy: TelemetryCopy, engine: StoreEngine): Promise<number> {
  const text =
    engine === 'timescaledb'
      ? COPY_ROWS
      : `${ROLLUP_SHARED_LOCK};${COPY_ROWS};${copy.lateBucketsStatement()}`;
  return new Promise((resolve, reject) => {
    client.query(new CopyInQuery(text, copy.data, (err, rows) => (err ? reject(err) : resolve(rows))));
  });
}

const INSERT_ROWS = `
  INSERT INTO telemetry_points (series_id, ts, value, quality, received_at)
  SELECT s, to_timestamp(ts / 1000.0), v, q, to_timestamp(r / 1000.0)
  FROM unnest($1::int[], $2::float8[], $3::float8[], $4::text[], $5::float8[]) AS x(s, ts, v, q, r)`;

// On plain PostgreSQL the late buckets of the rows this statement inserted are queued for
// the rollup, as after a COPY.
const withLateBuckets = (insertRows: string) =>
  markLateBuckets(
    `SELECT DISTINCT date_bin('5 minutes', ts, timestamptz '2000-01-01') AS bucket FROM ins`,
    `ins AS (${insertRows} RETURNING ts), `,
  );

/**
 * The write that skips stored rows (ON CONFLICT DO NOTHING): for a batch whose COPY met a stored
 * row, and for the batches after it. It costs PostgreSQL about twice what COPY does per row
 * (`./platform bench writes`).
 */
export const IDEMPOTENT_INSERT: Record<StoreEngine, string> = {
  timescaledb: `${INSERT_ROWS} ON CONFLICT DO NOTHING`,
  'postgres-partitions': withLateBuckets(`${INSERT_ROWS} ON CONFLICT DO NOTHING`),
};

/**
 * The write that skips stored rows, as the writer sends it: on plain PostgreSQL in one
 * transaction with ROLLUP_SHARED_LOCK before it (two round trips more, on this path only).
 * Resolves with the rows inserted, or -1 on plain PostgreSQL, where the statement returns the
 * late buckets it queued.
 */
export async function insertSkippingStored(
  client: PoolClient,
  params: string[],
  engine: StoreEngine,
): Promise<number> {
  if (engine === 'timescaledb') return (await client.query(IDEMPOTENT_INSERT[engine], params)).rowCount ?? 0;
  await client.query(`BEGIN;${ROLLUP_SHARED_LOCK}`);
  try {
    await client.query(IDEMPOTENT_INSERT[engine], params);
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
  return -1;
}

/** After a batch met stored rows, the batches of the next 30 s are written the idempotent way. */
const IDEMPOTENT_SPELL_MS = 30_000;

const UNIQUE_VIOLATION = '23505';

/**
 * Whether PostgreSQL refused the data itself, so that the same rows would fail again however
 * often they came: a data exception (class 22: a NUL byte in a text, a value out of range), an
 * integrity violation other than a stored row (class 23), or a value past a limit (54000, an
 * index row too large). Anything else (a connection lost, a deadlock, the disk full) may pass.
 */
export function refusedData(e: unknown): e is DatabaseError {
  if (!(e instanceof DatabaseError) || !e.code) return false;
  return (
    e.code.startsWith('22') || (e.code.startsWith('23') && e.code !== UNIQUE_VIOLATION) || e.code === '54000'
  );
}

/**
 * Writes batches of points in one transaction each, idempotently: the primary key
 * (tenant, device, metric, ts) makes a repeated row a no-op. Resolves once committed.
 *
 * A batch is first written by COPY, as fresh rows: the common case, and the cheapest. When
 * that fails because a row is already stored (a redelivery after a crash, a device repeating
 * a timestamp), nothing of it was written, and it is written again by an INSERT that skips
 * the stored rows. Redeliveries come in runs, so for IDEMPOTENT_SPELL_MS after one every
 * batch takes the INSERT at once.
 */
export class TelemetryBatchWriter {
  private engine: StoreEngine | undefined;
  private idempotentUntil = 0;
  /** The series ids this writer has met. */
  readonly series = new SeriesIds();

  constructor(private readonly pool: Pool) {}

  static connect(url: string, maxConnections = 4): TelemetryBatchWriter {
    // Connections kept through lulls (openPool); an idle one losing its server (a database
    // restart) is dropped by the pool, and the next batch connects again.
    const pool = openPool(url, { max: maxConnections, name: 'tsdb-writer' }, () => undefined);
    return new TelemetryBatchWriter(pool);
  }

  async detectEngine(): Promise<StoreEngine> {
    const { rows } = await this.pool.query(`SELECT value FROM telemetry_settings WHERE key = 'engine'`);
    if (!rows[0])
      throw new Error('telemetry_settings has no engine row: run the migrations first (platform migrate)');
    this.engine = rows[0].value as StoreEngine;
    return this.engine;
  }

  /**
   * Stores the points of the messages; returns how many rows were new (the rest were already
   * stored), or -1 where PostgreSQL does not say (the skipping INSERT on plain PostgreSQL,
   * which returns the queued buckets).
   */
  async write(messages: readonly NormalizedTelemetry[]): Promise<number> {
    const engine = this.engine ?? (await this.detectEngine());
    const client: PoolClient = await this.pool.connect();
    // A checked-out client whose server goes away between two queries emits 'error'; the
    // pool listens only to idle clients, and an unheard 'error' would end the process. The
    // failed query rejects anyway, and the batch is retried.
    const onError = () => undefined;
    client.on('error', onError);
    let broken: Error | undefined;
    try {
      // Committed on their own: a series numbered for a batch that then fails is kept.
      const ids = await this.series.resolve(client, messages);
      const copy =
        Date.now() < this.idempotentUntil
          ? undefined
          : TelemetryCopy.of(messages, engine === 'postgres-partitions', ids);
      if (copy?.rows === 0) return 0;
      if (copy)
        try {
          return await copyRows(client, copy, engine);
        } catch (e) {
          if (!(e instanceof DatabaseError && e.code === UNIQUE_VIOLATION)) throw e;
          this.idempotentUntil = Date.now() + IDEMPOTENT_SPELL_MS;
        }
      const columns = TelemetryColumns.of(messages, ids);
      if (columns.rows === 0) return 0;
      return await insertSkippingStored(client, columns.params(), engine);
    } catch (e) {
      // A connection that failed mid-COPY is not fit for the next batch: the pool drops it.
      if (!(e instanceof DatabaseError)) broken = e as Error;
      throw e;
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  /**
   * Writes the messages as `write` does; when PostgreSQL refuses a message's data (see
   * `refusedData`), the batch is halved until that message is alone, and the others are
   * stored. Resolves with the refused messages' errors by index; rejects, as `write` does,
   * on a failure that may pass. A batch already half stored is stored again without harm:
   * the stored rows are skipped.
   */
  async writeIsolating(messages: readonly NormalizedTelemetry[]): Promise<Map<number, DatabaseError>> {
    const refused = new Map<number, DatabaseError>();
    const attempt = async (from: number, to: number): Promise<void> => {
      try {
        await this.write(messages.slice(from, to));
      } catch (e) {
        if (!refusedData(e)) throw e;
        if (to - from === 1) return void refused.set(from, e);
        const mid = (from + to) >>> 1;
        await attempt(from, mid);
        await attempt(mid, to);
      }
    };
    await attempt(0, messages.length);
    return refused;
  }

  /** Creates daily partitions ahead and drops those past retention (plain PostgreSQL only). */
  async maintainPartitions(daysAhead = 7): Promise<void> {
    const engine = this.engine ?? (await this.detectEngine());
    if (engine !== 'postgres-partitions') return;
    await this.pool.query('SELECT telemetry_ensure_partitions(1, $1)', [daysAhead]);
    await this.pool.query('SELECT telemetry_apply_retention()');
  }

  /**
   * Materializes the rollup of the buckets that closed, and computes again those late
   * readings went into (plain PostgreSQL only; TimescaleDB's policy does it there). Any
   * replica may call it at any time: replicas take different buckets. Resolves with the
   * buckets computed.
   */
  async refreshRollup(bucketsPerStatement = 10): Promise<number> {
    const engine = this.engine ?? (await this.detectEngine());
    if (engine !== 'postgres-partitions') return 0;
    await this.pool.query('SELECT telemetry_5m_advance()');
    let total = 0;
    for (;;) {
      const { rows } = await this.pool.query<{ n: number }>('SELECT telemetry_5m_refresh($1) AS n', [
        bucketsPerStatement,
      ]);
      total += rows[0]!.n;
      if (rows[0]!.n < bucketsPerStatement) return total;
    }
  }

  async ping(): Promise<boolean> {
    await this.pool.query('SELECT 1');
    return true;
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
