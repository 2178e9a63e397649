import { backlogRatio, type BacklogSample } from './backlog';

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
