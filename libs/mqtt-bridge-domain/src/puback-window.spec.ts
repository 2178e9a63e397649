import { PubackWindow } from './puback-window';

describe('PubackWindow', () => {
  const newWindow = () => {
    const released: number[][] = [];
    return { released, sut: new PubackWindow<number>((p) => released.push(p)) };
  };

  it('releases a PUBACK once its message is held', () => {
    const { released, sut } = newWindow();
    const a = sut.hold(1);
    expect(released).toEqual([]);
    expect(sut.size).toBe(1);
    a.settle();
    expect(released).toEqual([[1]]);
    expect(sut.size).toBe(0);
  });

  it('keeps the arrival order: one settled early waits for those before it, then they go together', () => {
    const { released, sut } = newWindow();
    const [a, b, c] = [sut.hold(1), sut.hold(2), sut.hold(3)];
    c.settle();
    b.settle();
    expect(released).toEqual([]);
    a.settle();
    expect(released).toEqual([[1, 2, 3]]);
  });

  it('releases the settled head and keeps the rest waiting', () => {
    const { released, sut } = newWindow();
    const [a, , c] = [sut.hold(1), sut.hold(2), sut.hold(3)];
    c.settle();
    a.settle();
    expect(released).toEqual([[1]]);
    expect(sut.size).toBe(2);
  });

  it('acknowledges nothing of a closed connection, even what settles afterwards', () => {
    const { released, sut } = newWindow();
    const [a, b] = [sut.hold(1), sut.hold(2)];
    b.settle();
    expect(sut.drop()).toBe(2);
    a.settle();
    expect(released).toEqual([]);
    const c = sut.hold(1);
    c.settle();
    expect(released).toEqual([[1]]);
  });
});
