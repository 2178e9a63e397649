import { Pool, type PoolClient } from 'pg';
import type { NormalizedTelemetry } from '@iot/contracts';
import {
  copyRows,
  insertSkippingStored,
  SeriesIds,
  TelemetryBatchWriter,
  TelemetryColumns,
  TelemetryCopy,
} from '@iot/tsdb-writer-data-access';
import { BENCH_METRICS, BENCH_TENANT, benchDevices, METRICS_PER_MESSAGE, windowed } from './load';
import { ProcessMeter, type ProcessUsage } from './proc';
import type { BenchServers } from './servers';

/** As the writer takes them: batches of up to 1,000 messages, three transactions at once. */
const BATCH = 1_000;
const CONCURRENCY = 3;

export interface WriteFormResult {
  rowsPerS: number;
  processes: Record<string, ProcessUsage>;
}

/**
 * Batches of `messages` messages from 100 devices, each point a new row: one timestamp per
 * device and message, from `base` on, 1 ms apart.
 */
function batchesFrom(base: number, messages: number): NormalizedTelemetry[][] {
  const devices = benchDevices(100).map((d) => `writes-${d}`);
  const out: NormalizedTelemetry[][] = [];
  for (let i = 0; i < messages; i += BATCH) {
    const c: NormalizedTelemetry[] = [];
    for (let k = i; k < Math.min(messages, i + BATCH); k++) {
      const ts = base + Math.floor(k / devices.length);
      const m: NormalizedTelemetry = {
        tenant: BENCH_TENANT,
        device: devices[k % devices.length]!,
        messageId: `w-${k}`,
        ts,
        receivedAt: ts + 40,
        points: BENCH_METRICS.map((metric, j) => ({
          metric,
          value: 20 + j + (k % 7) / 10,
          unit: '%',
          quality: 'good',
        })),
      };
      c.push(m);
    }
    out.push(c);
  }
  return out;
}

async function timed(s: BenchServers, rows: number, run: () => Promise<void>): Promise<WriteFormResult> {
  const meter = new ProcessMeter({
    postgres: { pid: s.pg.process.pid, tree: true },
    bench: { pid: process.pid },
  }).begin();
  const t0 = performance.now();
  await run();
  const ms = performance.now() - t0;
  return { rowsPerS: (rows * 1000) / ms, processes: meter.end() };
}

/**
 * The writer's statements in their forms, sent from here as the writer sends them (the same
 * SQL, the same COPY body or array parameters, batches of 1,000 messages, three at once),
 * without NATS: what PostgreSQL spends per row on each, to read against `psql \copy` of the
 * same rows.
 *   fresh: COPY, the writer's common case, then on plain PostgreSQL the rollup of its
 *     buckets (`refreshRollup`);
 *   idempotent: INSERT ... ON CONFLICT DO NOTHING on new rows, the form after a unique_violation;
 *   redelivered: the idempotent form on rows that are all stored already.
 */
export async function measureWriteForms(
  s: BenchServers,
  messages: number,
): Promise<Record<'fresh' | 'idempotent' | 'redelivered', WriteFormResult>> {
  const pool = new Pool({ connectionString: s.pg.url, max: CONCURRENCY });
  try {
    const writer = new TelemetryBatchWriter(pool);
    const engine = await writer.detectEngine();
    // Buckets that closed a quarter of an hour ago, not yet materialized (as in the pipeline,
    // where rows come for the open bucket), and an hour before for the INSERT: every form but
    // the redelivery writes new rows and its own 5-minute buckets.
    const base = Math.floor((Date.now() - 900_000) / 300_000) * 300_000;
    if (engine === 'postgres-partitions')
      await pool.query(`UPDATE telemetry_5m_state SET materialized_upto = to_timestamp($1 / 1000.0)`, [base]);
    // The series are numbered before anything is timed, as a running writer has them.
    const ids = new SeriesIds();
    const freshBatches = batchesFrom(base, messages);
    const insertBatches = batchesFrom(base - 3_600_000, messages);
    const fresh: TelemetryCopy[] = [];
    for (const b of freshBatches)
      fresh.push(TelemetryCopy.of(b, engine === 'postgres-partitions', await ids.resolve(pool, b))!);
    const idempotent: string[][] = [];
    for (const b of insertBatches)
      idempotent.push(TelemetryColumns.of(b, await ids.resolve(pool, b)).params());
    const rows = messages * METRICS_PER_MESSAGE;
    /** `n` writes, CONCURRENCY at once, each on a client of its own as the writer's are. */
    const writeAll = (n: number, send: (client: PoolClient, i: number) => Promise<unknown>) =>
      windowed(n, CONCURRENCY, async (i) => {
        const client = await pool.connect();
        try {
          await send(client, i);
        } finally {
          client.release();
        }
      });
    const copy = async () => {
      await writeAll(fresh.length, (client, i) => copyRows(client, fresh[i]!, engine));
      // The rollup of those buckets, which the writer computes every 30 s: its cost is theirs.
      await writer.refreshRollup();
    };
    const insert = () =>
      writeAll(idempotent.length, (client, i) => insertSkippingStored(client, idempotent[i]!, engine));
    return {
      fresh: await timed(s, rows, copy),
      idempotent: await timed(s, rows, insert),
      redelivered: await timed(s, rows, insert),
    };
  } finally {
    await pool.end();
  }
}
