import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import {
  BacklogGate,
  backlogRatio,
  backlogRoom,
  CheckBudget,
  UNKNOWN_MESSAGE_BYTES,
  type BacklogSample,
} from './backlog';

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

  it('takes each message behind at the largest size sampled where that exceeds the average', () => {
    // 100 packs of 10 KB behind, after 900 small messages already processed: 1,000 KB of the
    // 2,000 KB limit, not the 100 of 1,000 messages at the average of 1 KB.
    const packs = { pending: 100, ackFloorStreamSeq: 900 };
    expect(at(packs)).toBeCloseTo(0.05);
    expect(at({ ...packs, behindSizes: [10_000, 10_000] })).toBeCloseTo(0.5);
    // Smaller samples leave the average.
    expect(at({ ...packs, behindSizes: [200] })).toBeCloseTo(0.05);
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

describe('backlogRoom', () => {
  const stream = { firstSeq: 1, lastSeq: 1_000, bytes: 1_000_000, maxBytes: 2_000_000 };

  it('is how many more messages the stream takes before the backlog passes the ratio', () => {
    // 500 of 1 KB behind: 0.25 of 2,000 KB; 0.4 is reached at 800.
    const behind = { ...stream, pending: 500, ackPending: 0, ackFloorStreamSeq: 500 };
    expect(backlogRoom(behind, 0.4)).toBe(300);
    expect(backlogRoom(behind, 0.2)).toBe(0);
    // Messages of 10 KB behind: 80 of them fill 0.4, and 500 are already more.
    expect(backlogRoom({ ...behind, behindSizes: [10_000] }, 0.4)).toBe(0);
    expect(
      backlogRoom(
        { ...behind, pending: 0, ackPending: 40, ackFloorStreamSeq: 960, behindSizes: [10_000] },
        0.4,
      ),
    ).toBe(40);
  });

  it('counts nothing behind for a consumer that is not, and sizes an empty stream large', () => {
    expect(backlogRoom({ ...stream, pending: 0, ackPending: 0, ackFloorStreamSeq: 10 }, 0.5)).toBe(1_000);
    const empty = {
      firstSeq: 1,
      lastSeq: 0,
      bytes: 0,
      maxBytes: 2_000_000,
      pending: 0,
      ackPending: 0,
      ackFloorStreamSeq: 0,
    };
    expect(backlogRoom(empty, 0.5)).toBe(Math.floor(1_000_000 / UNKNOWN_MESSAGE_BYTES));
    expect(backlogRoom({ ...empty, maxBytes: -1 }, 0.5)).toBe(Infinity);
  });
});

describe('CheckBudget', () => {
  it('allows nothing before the first check, then the room less what is held', () => {
    const b = new CheckBudget();
    expect(b.spent).toBe(true);
    b.renew(300, 1_000, 0, 50);
    expect({ allowed: b.allowed, left: b.left, spent: b.spent }).toEqual({
      allowed: 300,
      left: 250,
      spent: false,
    });
    b.taken += 250;
    expect(b.spent).toBe(true);
  });

  it("measures the next stream's messages per message settled: packs allow more, a fan-out fewer", () => {
    const packs = new CheckBudget();
    packs.renew(100, 1_000, 0, 0);
    // Each 500 settled, the next stream 10 messages longer: packs of 50. The measure falls
    // by half a check at most, so it takes five checks to allow 100 packs' worth.
    const allowed: number[] = [];
    for (let i = 1; i <= 6; i++) {
      packs.renew(100, 1_000 + 10 * i, 500 * i, 0);
      allowed.push(packs.allowed);
    }
    expect(allowed).toEqual([200, 400, 800, 1_600, 3_200, 5_000]);
    const gateway = new CheckBudget();
    gateway.renew(100, 1_000, 0, 0);
    gateway.renew(100, 1_400, 100, 0);
    expect(gateway.allowed).toBe(25);
    // Too few settled to measure: the last measure stands, and the next counts them in.
    gateway.renew(100, 1_401, 105, 0);
    expect(gateway.allowed).toBe(25);
    gateway.renew(100, 1_410, 120, 0);
    // 10 more in the stream for those 20 settled: 0.5 each, taken as 2 (half of 4, at most).
    expect(gateway.allowed).toBe(50);
  });

  it('lets a measure fall by at most half a check, and never below one in 256', () => {
    const b = new CheckBudget();
    b.renew(100, 1_000, 0, 0);
    // 100 settled, nothing published (all dead-lettered).
    b.renew(100, 1_000, 100, 0);
    expect(b.allowed).toBe(200);
    for (let i = 2; i < 20; i++) b.renew(100, 1_000, 100 * i, 0);
    expect(b.allowed).toBe(25_600);
    b.renew(Infinity, 1_000, 2_000, 0);
    expect(b.allowed).toBe(Infinity);
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
      // Messages of 1 KB (as the average).
      getMessage: async () => ({ subject: 'x', data: new Uint8Array(1_000 - 17) }),
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
    // Room up to halfway from 0.4 to 1 (0.7, 1,400 messages of 1 KB), less the 500 behind.
    expect({ room: g.room, lastSeq: g.lastSeq, checks: g.checks }).toEqual({
      room: 900,
      lastSeq: 1_000,
      checks: 4,
    });
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
