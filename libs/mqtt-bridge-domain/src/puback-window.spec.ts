import { PubackWindow } from './puback-window';

describe('PubackWindow', () => {
  const newWindow = () => {
    const released: string[][] = [];
    return { released, sut: new PubackWindow<string>((p) => released.push(p)) };
  };

  it('releases a PUBACK once its message is held and its PUBACK produced', () => {
    const { released, sut } = newWindow();
    const a = sut.hold();
    a.capture('ack-1');
    expect(released).toEqual([]);
    a.settle();
    expect(released).toEqual([['ack-1']]);
    expect(sut.size).toBe(0);
  });

  it('keeps the arrival order: one settled early waits for those before it, then they go together', () => {
    const { released, sut } = newWindow();
    const [a, b, c] = [sut.hold(), sut.hold(), sut.hold()];
    a.capture('ack-1');
    b.capture('ack-2');
    c.capture('ack-3');
    c.settle();
    b.settle();
    expect(released).toEqual([]);
    a.settle();
    expect(released).toEqual([['ack-1', 'ack-2', 'ack-3']]);
  });

  it('waits for the PUBACK itself when the message settled first', () => {
    const { released, sut } = newWindow();
    const a = sut.hold();
    a.settle();
    expect(released).toEqual([]);
    a.capture('ack-1');
    expect(released).toEqual([['ack-1']]);
  });

  it('acknowledges nothing of a closed connection, even what settles afterwards', () => {
    const { released, sut } = newWindow();
    const [a, b] = [sut.hold(), sut.hold()];
    a.capture('ack-1');
    b.capture('ack-2');
    b.settle();
    expect(sut.drop()).toBe(2);
    a.settle();
    expect(released).toEqual([]);
    const c = sut.hold();
    c.capture('ack-3');
    c.settle();
    expect(released).toEqual([['ack-3']]);
  });
});
