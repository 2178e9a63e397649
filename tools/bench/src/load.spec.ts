import { canonicalMessage } from './load';

/** The payload as an object, written the obvious way: what the template must equal. */
function expected(id: string, ts: number, seed: number): string {
  return JSON.stringify({
    message_id: id,
    ts,
    readings: {
      soil_moisture: { value: 30 + (seed % 40), unit: '%' },
      temperature: { value: 15 + (seed % 20) / 2, unit: 'Cel' },
      humidity: { value: 40 + (seed % 30), unit: '%' },
      light_level: { value: 10_000 + (seed % 5_000), unit: 'lx' },
      battery_voltage: { value: 3.7 + (seed % 40) / 100, unit: 'V' },
    },
  });
}

describe('canonicalMessage', () => {
  it('writes the same JSON as JSON.stringify of the message, fractions included', () => {
    const ts = 1_765_000_000_123;
    for (const seed of [0, 1, 3, 7, 13, 39, 4_999, 123_457]) {
      const text = canonicalMessage(ts, seed);
      const id = (JSON.parse(text) as { message_id: string }).message_id;
      expect(text).toBe(expected(id, ts, seed));
    }
  });

  it('gives every message its own message_id', () => {
    const ids = new Set(
      Array.from(
        { length: 1000 },
        (_, i) => (JSON.parse(canonicalMessage(0, i)) as { message_id: string }).message_id,
      ),
    );
    expect(ids.size).toBe(1000);
  });
});
