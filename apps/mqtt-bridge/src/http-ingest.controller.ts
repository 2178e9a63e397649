import {
  Controller,
  ForbiddenException,
  Headers as HttpHeaders,
  HttpCode,
  HttpException,
  HttpStatus,
  Inject,
  PayloadTooLargeException,
  Post,
  Query,
  Req,
  Res,
  ServiceUnavailableException,
  UnauthorizedException,
} from '@nestjs/common';
import { ApiBody, ApiHeader, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { Public } from '@iot/auth-guard';
import { deviceHeaders, Headers, Subjects } from '@iot/contracts';
import type { JetStreamPublisher } from '@iot/messaging';
import { messageIdOf } from '@iot/mqtt-bridge-domain';
import { newTraceparent, type IotMetrics } from '@iot/observability';
import { ENV, METRICS, PUBLISHER } from '@iot/service-runtime';
import { DeviceGate } from './device-gate';
import type { BridgeEnv } from './env';
import { STAGE } from './mqtt-ingest';
import { RawStreamGate, REFUSED_RETRY_AFTER_S } from './raw-stream-gate';

export const HTTP_INGEST_ROUTE = 'v1/telemetry';

function bearer(authorization?: string): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  return m?.[1];
}

/**
 * HTTP ingest for devices that cannot hold an MQTT session: the same payloads as MQTT,
 * authenticated by a device key, on the same path onward. 202 means JetStream holds the
 * message; any other answer means it does not, and the device should send it again
 * (a resend with the same `message_id` is stored once): 429 and 503 after their Retry-After,
 * 503 also while the pipeline is too far behind to keep more (`RawStreamGate`).
 */
@ApiTags('http ingest')
// Devices authenticate with their device key (checked below), not with a user's access token.
@Public()
@Controller(HTTP_INGEST_ROUTE)
export class HttpIngestController {
  constructor(
    @Inject(ENV) private readonly env: BridgeEnv,
    @Inject(PUBLISHER) private readonly publisher: JetStreamPublisher,
    @Inject(METRICS) private readonly metrics: IotMetrics,
    private readonly gate: DeviceGate,
    private readonly rawStream: RawStreamGate,
  ) {
    metrics.messagesProcessed.inc({ stage: STAGE, outcome: 'refused' }, 0);
  }

  @Post()
  @HttpCode(202)
  @ApiOperation({
    summary: "Send one telemetry message (any format the demux knows) as the key's device",
  })
  @ApiQuery({
    name: 'format',
    required: false,
    enum: ['canonical', 'zenthos'],
    description:
      'canonical (default; also SenML packs and gateway batches, told apart by their shape) or zenthos',
  })
  @ApiHeader({ name: 'Authorization', description: 'Bearer dev_ak_... (or the X-Device-Key header)' })
  @ApiBody({
    schema: { example: { message_id: 'm-1', ts: '2026-11-25T10:00:00Z', readings: { temperature: 21.5 } } },
  })
  async ingest(
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
    @HttpHeaders('authorization') authorization?: string,
    @HttpHeaders('x-device-key') headerKey?: string,
    @Query('format') format = 'canonical',
  ): Promise<{ accepted: true; device: string; message_id: string }> {
    const receivedAt = Date.now();
    if (format !== 'canonical' && format !== 'zenthos')
      throw new HttpException(
        `format "${format}" is not one the pipeline decodes: use canonical or zenthos`,
        HttpStatus.BAD_REQUEST,
      );
    const key = bearer(authorization) ?? headerKey;
    if (!key) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      throw new UnauthorizedException(
        'no device key: send "Authorization: Bearer dev_ak_..." (or X-Device-Key) with the key issued for the device',
      );
    }
    const record = this.gate.deviceByKey(key);
    if (!record) {
      res.setHeader('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw new UnauthorizedException(
        'the device key is unknown or revoked: ask for a new key for the device',
      );
    }
    if (record.state !== 'active')
      throw new ForbiddenException(`device "${record.device}" is ${record.state}: it may not send`);
    this.gate.noteKeyUse(record, key);
    const payload: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (payload.byteLength === 0)
      throw new HttpException(
        'the body is empty: send the telemetry payload as the body',
        HttpStatus.BAD_REQUEST,
      );
    if (payload.byteLength > this.env.MAX_PAYLOAD_BYTES)
      throw new PayloadTooLargeException(
        `payload of ${payload.byteLength} bytes exceeds the limit of ${this.env.MAX_PAYLOAD_BYTES} bytes: split it into several messages`,
      );
    this.metrics.messagesReceived.inc({ stage: STAGE });
    if (await this.rawStream.refusing()) {
      this.metrics.messagesProcessed.inc({ stage: STAGE, outcome: 'refused' });
      res.setHeader('Retry-After', String(REFUSED_RETRY_AFTER_S));
      throw new ServiceUnavailableException(this.rawStream.reason);
    }
    const decision = this.gate.limiter.take(record.device, record.model, receivedAt);
    if (!decision.allowed) {
      this.metrics.messagesProcessed.inc({ stage: STAGE, outcome: 'dropped' });
      res.setHeader('Retry-After', '1');
      throw new HttpException(
        `device "${record.device}" sends faster than its rate limit: send again after the Retry-After delay`,
        HttpStatus.TOO_MANY_REQUESTS,
      );
    }
    const msgId = messageIdOf(record.device, payload);
    await this.publisher.publish(Subjects.raw(record.tenant, record.device), payload, {
      msgId,
      traceparent: newTraceparent(),
      headers: {
        // The MQTT topic the device would have used: the demux picks the decoder by it.
        [Headers.sourceTopic]:
          format === 'zenthos'
            ? `zenthos/${record.model}/${record.device}/telemetry`
            : `devices/${record.device}/telemetry`,
        [Headers.transport]: 'http',
        ...deviceHeaders(record.tenant, record.device, receivedAt),
        [Headers.model]: record.model,
      },
    });
    this.metrics.messagesProcessed.inc({ stage: STAGE, outcome: 'ok' });
    return { accepted: true, device: record.device, message_id: msgId };
  }
}
