import { context, propagation, trace, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { randomBytes } from 'node:crypto';

/** A header carrier: NATS `MsgHdrs` satisfy it, as does a plain map. */
export interface HeaderCarrier {
  get(key: string): string;
  set(key: string, value: string): void;
}

const getter: TextMapGetter<HeaderCarrier> = {
  keys: () => ['traceparent', 'tracestate'],
  get: (carrier, key) => carrier.get(key) || undefined,
};
const setter: TextMapSetter<HeaderCarrier> = { set: (carrier, key, value) => carrier.set(key, value) };

// The W3C propagator is registered even when no SDK runs, so traceparent passes through.
propagation.setGlobalPropagator(new W3CTraceContextPropagator());

let sdkShutdown: (() => Promise<void>) | undefined;

/**
 * Starts the OpenTelemetry NodeSDK with the OTLP exporter when an endpoint is configured.
 * Without one, only a context manager is installed: incoming trace context still becomes
 * active around handlers, so log lines carry the device's trace id and publishes pass it on.
 */
export async function startTracing(service: string, endpoint: string | undefined): Promise<void> {
  if (!endpoint) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    return;
  }
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
  const sdk = new NodeSDK({ serviceName: service, traceExporter: new OTLPTraceExporter({ url: endpoint }) });
  sdk.start();
  sdkShutdown = () => sdk.shutdown();
}

export async function stopTracing(): Promise<void> {
  await sdkShutdown?.();
}

/** A fresh W3C traceparent, for messages that arrive without one (devices rarely send it). */
// Ids come from a pool filled 8 KiB at a time: one randomBytes call per message was 7% of
// the bridge's CPU (a syscall each), and trace ids need uniqueness, not secrecy.
const POOL_BYTES = 8192;
let pool = Buffer.alloc(0);
let poolAt = POOL_BYTES;

function randomHex(bytes: number): string {
  if (poolAt + bytes > pool.length) {
    pool = randomBytes(POOL_BYTES);
    poolAt = 0;
  }
  const hex = pool.toString('hex', poolAt, poolAt + bytes);
  poolAt += bytes;
  return hex;
}

export function newTraceparent(): string {
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
}

/**
 * Writes the trace context into outgoing headers: the active span's when tracing runs,
 * else the incoming message's traceparent unchanged, else a new one.
 */
export function injectTraceContext(headers: HeaderCarrier, incomingTraceparent?: string): void {
  propagation.inject(context.active(), headers, setter);
  if (!headers.get('traceparent')) headers.set('traceparent', incomingTraceparent || newTraceparent());
}

/** Runs `fn` in the context carried by `headers`, so spans and logs join the device's trace. */
export function withExtractedContext<T>(headers: HeaderCarrier | undefined, fn: () => T): T {
  if (!headers) return fn();
  return context.with(propagation.extract(context.active(), headers, getter), fn);
}

export function currentTraceIds(): { trace_id: string; span_id: string } | undefined {
  const span = trace.getSpan(context.active());
  if (!span) return undefined;
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

export function traceIdOf(traceparent: string | undefined): string | undefined {
  return traceparent?.split('-')[1];
}
