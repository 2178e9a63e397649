import { Controller, Inject } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { Consumers, Headers, Subjects } from '@iot/contracts';
import { decodeRaw } from '@iot/demux-domain';
import type { JetStreamPatternExtras, JetStreamPublisher, MessageMeta } from '@iot/messaging';
import { ENV, PUBLISHER } from '@iot/service-runtime';
import type { CleanedEnv } from 'envalid';
import type { demuxEnv } from './env';

const extras: JetStreamPatternExtras<Uint8Array> = {
  consumer: Consumers.demux,
  decoder: 'bytes',
  batchSize: 256,
};

/** Raw device message in, decoded readings out; an invalid message goes to the DLQ with why. */
@Controller()
export class DemuxController {
  constructor(
    @Inject(PUBLISHER) private readonly publisher: JetStreamPublisher,
    @Inject(ENV) private readonly env: CleanedEnv<typeof demuxEnv>,
  ) {}

  @EventPattern(Consumers.demux.durable, extras)
  async onRaw(@Payload() bytes: Uint8Array, @Ctx() meta: MessageMeta): Promise<void> {
    const decoded = decodeRaw(
      bytes,
      {
        tenant: meta.tenant,
        device: meta.device,
        sourceTopic: meta.header(Headers.sourceTopic) ?? '',
        msgId: meta.msgId,
        receivedAt: meta.receivedAt ?? Date.now(),
      },
      { maxFutureSkewMs: this.env.MAX_FUTURE_SKEW_MS, defaultModel: meta.header(Headers.model) ?? 'generic' },
    );
    await this.publisher.publishJson(Subjects.decoded(decoded.tenant, decoded.device), decoded, {
      msgId: meta.msgId,
      traceparent: meta.traceparent,
      headers: {
        [Headers.tenant]: decoded.tenant,
        [Headers.device]: decoded.device,
        [Headers.receivedAt]: String(decoded.receivedAt),
      },
    });
  }
}
