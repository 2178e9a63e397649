import {
  injectTraceContext,
  newTraceparent,
  startTracing,
  traceIdOf,
  withExtractedContext,
  currentTraceIds,
} from './tracing';

beforeAll(() => startTracing('test', undefined));

function carrier(initial: Record<string, string> = {}) {
  const m = new Map(Object.entries(initial));
  return { get: (k: string) => m.get(k) ?? '', set: (k: string, v: string) => void m.set(k, v), map: m };
}

describe('trace context through message headers', () => {
  it('makes W3C traceparents', () => {
    expect(newTraceparent()).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(newTraceparent()).not.toBe(newTraceparent());
    // Across several refills of the id pool, every one differs.
    const many = Array.from({ length: 2_000 }, () => newTraceparent());
    expect(new Set(many).size).toBe(2_000);
    expect(many.every((t) => /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/.test(t))).toBe(true);
  });

  it("passes the incoming message's traceparent on when no span is active, so one trace spans the pipeline", () => {
    const incoming = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const out = carrier();
    injectTraceContext(out, incoming);
    expect(out.map.get('traceparent')).toBe(incoming);
    expect(traceIdOf(out.map.get('traceparent'))).toBe('0af7651916cd43dd8448eb211c80319c');
  });

  it('starts a new trace when the message carried none', () => {
    const out = carrier();
    injectTraceContext(out, undefined);
    expect(out.map.get('traceparent')).toMatch(/^00-[0-9a-f]{32}-/);
  });

  it('runs a handler inside the context of the incoming headers', () => {
    const incoming = carrier({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    const ids = withExtractedContext(incoming, () => currentTraceIds());
    expect(ids).toEqual({ trace_id: '0af7651916cd43dd8448eb211c80319c', span_id: 'b7ad6b7169203331' });
  });
});
