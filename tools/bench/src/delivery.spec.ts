import { deviceSide, parseRecord, spread } from './delivery';

describe("the simulator's record", () => {
  it('says how late each message left and how long its PUBACK took, unacked ones left out', () => {
    const sent = parseRecord(
      [
        'device,message_id,ts_ms,sent_at_ms,acked_at_ms',
        'd-1,m-1,1000,1000,1012', // on time, PUBACK after 12 ms
        'd-2,m-2,1005,1035,1040', // sent 30 ms late, PUBACK after 5 ms
        'd-1,m-3,1010,1011,0', // no PUBACK came
      ].join('\n'),
    );
    expect(sent.map((m) => [m.device, m.ts, m.ackedAt > 0, m.poison])).toEqual([
      ['d-1', '1000', true, false],
      ['d-2', '1005', true, false],
      ['d-1', '1010', false, false],
    ]);
    expect(deviceSide(sent)).toEqual({
      sendLagMs: { p50: 1, p99: 30, max: 30 },
      pubackMs: { p50: 5, p99: 12, max: 12 },
    });
  });

  it("gives the send lag's p99 of each window by the time a message was due", () => {
    const sent = parseRecord(
      [
        'device,message_id,ts_ms,sent_at_ms,acked_at_ms',
        'd-1,m-1,990,1000,1010', // due before the first window: counted in it
        'd-2,m-2,1000,1200,1210', // window 0: sent 200 ms late
        'd-1,m-3,6000,6004,6010', // window 1: 4 ms late
        'd-2,m-4,6100,6103,0', // window 1, no PUBACK: its lag still counts
        'd-1,m-5,16000,16001,16002', // window 3; window 2 had nothing due
      ].join('\n'),
    );
    const side = deviceSide(sent, { fromMs: 1000, widthMs: 5000 });
    expect(side?.sendLagP99ByWindowMs).toEqual([200, 4, undefined, 1]);
    expect(side?.sendLagMs).toEqual({ p50: 4, p99: 200, max: 200 });
    // Without windows, nothing by window.
    expect(deviceSide(sent)?.sendLagP99ByWindowMs).toBeUndefined();
  });

  it('reads a record of the older layout, without send times, and reports no device side', () => {
    const sent = parseRecord('device,message_id,ts_ms,acked_at_ms\nd-1,poison-7,1000,1003\n');
    expect(sent).toHaveLength(1);
    expect(sent[0]!.poison).toBe(true);
    expect(sent[0]!.ackedAt).toBe(1003);
    expect(deviceSide(sent)).toBeUndefined();
  });

  it('refuses a record that lacks a column it needs, naming it', () => {
    expect(() => parseRecord('device,ts_ms,acked_at_ms\nd-1,1000,0')).toThrow(/no column message_id/);
  });
});

describe('spread', () => {
  it('takes the nearest rank, in numeric order', () => {
    // 100 values 1..100 given out of order: p50 is the 50th, p99 the 99th.
    const values = Float64Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
    expect(spread(values)).toEqual({ p50: 50, p99: 99, max: 100 });
    expect(spread(Float64Array.from([9, 10, 100]))).toEqual({ p50: 10, p99: 100, max: 100 });
    expect(spread(new Float64Array(0))).toBeUndefined();
  });
});
