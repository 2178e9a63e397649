import { Pool } from 'pg';
import type { NormalizedTelemetry } from '@iot/contracts';
import { STATEMENTS, TelemetryBatchWriter, TelemetryColumns } from '@iot/tsdb-writer-data-access';
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
function batchesFrom(base: number, messages: number): TelemetryColumns[] {
  const devices = benchDevices(100).map((d) => `writes-${d}`);
  const out: TelemetryColumns[] = [];
  for (let i = 0; i < messages; i += BATCH) {
    const c = new TelemetryColumns();
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
      c.addMessage(m);
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
 * The writer's statement in its forms, sent from here as the writer sends it (the same SQL,
 * the same array parameters, batches of 1,000 messages, three at once), without NATS: what
 * PostgreSQL spends per row on each, to read against `psql \copy` of the same rows.
 *   fresh: a plain INSERT (with the rollup on plain PostgreSQL), the writer's common case;
 *   idempotent: ON CONFLICT DO NOTHING, the form after a unique_violation, on new rows;
 *   redelivered: the idempotent form on rows that are all stored already.
 */
export async function measureWriteForms(
  s: BenchServers,
  messages: number,
): Promise<Record<'fresh' | 'idempotent' | 'redelivered', WriteFormResult>> {
  const pool = new Pool({ connectionString: s.pg.url, max: CONCURRENCY });
  try {
    const sql = STATEMENTS[await new TelemetryBatchWriter(pool).detectEngine()];
    // Two distinct hours of yesterday, so that every form but the redelivery writes new rows
    // and its own 5-minute buckets.
    const day = Date.now() - 86_400_000;
    const fresh = batchesFrom(day, messages);
    const idempotent = batchesFrom(day + 3_600_000, messages);
    const rows = messages * METRICS_PER_MESSAGE;
    const send = (text: string, batches: TelemetryColumns[]) => () =>
      windowed(batches.length, CONCURRENCY, async (i) => {
        await pool.query(text, batches[i]!.params());
      });
    return {
      fresh: await timed(s, rows, send(sql.fresh, fresh)),
      idempotent: await timed(s, rows, send(sql.idempotent, idempotent)),
      redelivered: await timed(s, rows, send(sql.idempotent, idempotent)),
    };
  } finally {
    await pool.end();
  }
}
