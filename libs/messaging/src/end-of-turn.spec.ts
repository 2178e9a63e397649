import { EndOfTurnQueue } from './end-of-turn';

const nextTurn = () => new Promise((r) => setImmediate(r));

describe('EndOfTurnQueue', () => {
  it('hands over what one turn collected together, in order, and the next turn apart', async () => {
    const handed: number[][] = [];
    const q = new EndOfTurnQueue<number>((items) => handed.push(items));
    q.push(1);
    q.push(2);
    q.push(3);
    expect(handed).toEqual([]);
    await nextTurn();
    q.push(4);
    await nextTurn();
    expect(handed).toEqual([[1, 2, 3], [4]]);
  });

  it('with a linger, gathers what several turns bring and hands it over once the linger is up', () => {
    jest.useFakeTimers();
    try {
      const handed: number[][] = [];
      const q = new EndOfTurnQueue<number>((items) => handed.push(items), 5);
      q.push(1);
      jest.advanceTimersByTime(1); // turns pass, the linger does not
      q.push(2);
      jest.advanceTimersByTime(3);
      expect(handed).toEqual([]);
      jest.advanceTimersByTime(1); // 5 ms after the first item
      expect(handed).toEqual([[1, 2]]);
      q.push(3);
      jest.advanceTimersByTime(5);
      expect(handed).toEqual([[1, 2], [3]]);
    } finally {
      jest.useRealTimers();
    }
  });

  it('with a linger, hands over at the end of the turn once `soonerAt` items wait', async () => {
    const handed: number[][] = [];
    const q = new EndOfTurnQueue<number>((items) => handed.push(items), 60_000, 3);
    q.push(1);
    q.push(2);
    await nextTurn();
    expect(handed).toEqual([]); // two wait for the linger (a minute)
    q.push(3);
    q.push(4);
    await nextTurn();
    expect(handed).toEqual([[1, 2, 3, 4]]);
    q.push(5);
    await nextTurn();
    expect(handed).toEqual([[1, 2, 3, 4]]); // a new wait, with its own linger
    q.clear();
  });

  it('after a clear, what is pushed next waits its own linger', async () => {
    const handed: number[][] = [];
    const q = new EndOfTurnQueue<number>((items) => handed.push(items), 60_000, 2);
    q.push(1);
    q.push(2); // leaves at the end of this turn...
    q.clear(); // ...but is dropped, and its wait with it
    q.push(3);
    await nextTurn();
    expect(handed).toEqual([]); // 3 waits for the linger (a minute), not the old end of turn
    q.clear();
  });

  it('drops what waits when cleared', async () => {
    const handed: string[][] = [];
    const q = new EndOfTurnQueue<string>((items) => handed.push(items));
    q.push('a');
    q.clear();
    await nextTurn();
    expect(handed.flat()).toEqual([]);
  });
});
