import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { BacklogGate, backlogRatio, type BacklogSample } from './backlog';

describe('backlogRatio', () => {
  // A stream of 1,000 messages, 1 KB each, limited to 2,000 KB: half full.
  const stream = { firstSeq: 1, lastSeq: 1_000, bytes: 1_000_000, maxBytes: 2_000_000 };
  const at = (sample: Partial<BacklogSample>) =>
    backlogRatio({ ...stream, pending: 1, ackPending: 0, ackFloorStreamSeq: 1_000, ...sample });

  it('is 0 for a consumer that has processed everything, or has nothing pending', () => {
    expect(at({ pending: 0, ackFloorStreamSeq: 1_000 })).toBe(0);
    // Its last message long ago, the stream since filled with other subjects: not behind.
    expect(at({ pending: 0, ackFloorStreamSeq: 10 })).toBe(0);
  });

  it("is the share of the stream's limit the unprocessed messages take", () => {
    expect(at({ pending: 500, ackFloorStreamSeq: 500 })).toBeCloseTo(0.25);
    expect(at({ pending: 1_000, ackFloorStreamSeq: 0 })).toBeCloseTo(0.5);
  });

  it('counts messages delivered and not acknowledged (a stage whose writes fail) as unprocessed', () => {
    expect(at({ pending: 0, ackPending: 500, ackFloorStreamSeq: 500 })).toBeCloseTo(0.25);
    expect(at({ pending: 200, ackPending: 800, ackFloorStreamSeq: 0 })).toBeCloseTo(0.5);
  });

  it('reaches 1 when the stream is full and has discarded past the ack floor', () => {
    const full = { firstSeq: 5_001, lastSeq: 7_000, bytes: 2_000_000, maxBytes: 2_000_000 };
    expect(backlogRatio({ ...full, pending: 2_000, ackPending: 0, ackFloorStreamSeq: 3_000 })).toBe(1);
    expect(backlogRatio({ ...full, pending: 0, ackPending: 2_000, ackFloorStreamSeq: 3_000 })).toBe(1);
    expect(backlogRatio({ ...full, pending: 1_000, ackPending: 0, ackFloorStreamSeq: 6_000 })).toBeCloseTo(
      0.5,
    );
  });

  it('is 0 on a stream without a byte limit, or empty', () => {
    expect(at({ pending: 10, ackFloorStreamSeq: 0, maxBytes: -1 })).toBe(0);
    expect(
      backlogRatio({
        pending: 1,
        ackPending: 0,
        ackFloorStreamSeq: 0,
        firstSeq: 0,
        lastSeq: -1,
        bytes: 0,
        maxBytes: 10,
      }),
    ).toBe(0);
  });
});

describe('BacklogGate', () => {
  // What the servers answer: a 1,000-message stream of 2,000 KB at most, the consumer behind
  // by `behind` messages (a ratio of behind / 2,000), or an error.
  let answer: number | Error = 0;
  const jsm = {
    consumers: {
      info: async () => {
        if (answer instanceof Error) throw answer;
        return { num_pending: answer, num_ack_pending: 0, ack_floor: { stream_seq: 1_000 - answer } };
      },
    },
    streams: {
      info: async () => ({
        state: { first_seq: 1, last_seq: 1_000, bytes: 1_000_000 },
        config: { max_bytes: 2_000_000 },
      }),
    },
  } as unknown as JetStreamManager;
  const consumer = { stream: 'TELEMETRY_DECODED_V1', durable: 'next' } as const;
  const gate = () => new BacklogGate({ consumer, above: 0.4, below: 0.3 });
  const apiError = (code: number) =>
    new JetStreamApiError({ code: 404, err_code: code, description: 'gone' });

  it('shuts above its ratio, stays shut down to the lower one, and opens below it', async () => {
    const g = gate();
    const steps: Array<[number, boolean, boolean]> = [
      // behind, changed, shut
      [700, false, false], // 0.35
      [900, true, true], // 0.45
      [700, false, true], // 0.35: still shut
      [500, true, false], // 0.25
    ];
    for (const [behind, changed, shut] of steps) {
      answer = behind;
      expect({ behind, changed: await g.check(jsm), shut: g.shut }).toEqual({ behind, changed, shut });
    }
    expect(g.ratio).toBeCloseTo(0.25);
  });

  it('opens when the consumer or its stream is gone, and keeps its state when the server fails otherwise', async () => {
    const g = gate();
    answer = 900;
    await g.check(jsm);
    answer = new Error('TIMEOUT');
    expect(await g.check(jsm)).toBe(false);
    answer = apiError(JetStreamApiCodes.JetStreamNotEnabledForAccount);
    expect(await g.check(jsm)).toBe(false);
    expect(g.shut).toBe(true);
    answer = apiError(JetStreamApiCodes.ConsumerNotFound);
    expect(await g.check(jsm)).toBe(true);
    expect(g.shut).toBe(false);
    answer = 900;
    await g.check(jsm);
    answer = apiError(JetStreamApiCodes.StreamNotFound);
    expect(await g.check(jsm)).toBe(true);
  });

  it('refuses limits that could never shut or never open', () => {
    expect(() => new BacklogGate({ consumer, above: 0, below: 0 })).toThrow(/needs 0 < above <= 1/);
    expect(() => new BacklogGate({ consumer, above: 0.5, below: 0.6 })).toThrow(
      /next's backlog .* it has above 0.5, below 0.6/,
    );
  });
});
