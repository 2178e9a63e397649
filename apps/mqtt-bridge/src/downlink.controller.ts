import { Controller, Inject } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import {
  Consumers,
  Headers,
  Subjects,
  Validators,
  type CommandResult,
  type DeviceCommand,
} from '@iot/contracts';
import type { JetStreamPatternExtras, JetStreamPublisher, MessageMeta } from '@iot/messaging';
import { PUBLISHER } from '@iot/service-runtime';
import { MqttIngest } from './mqtt-ingest';

const extras: JetStreamPatternExtras<DeviceCommand> = {
  consumer: Consumers.mqttBridgeCommands,
  decoder: Validators.deviceCommand,
  batchSize: 64,
};

/**
 * Downlink: a command on `iot.cmd.v1.<tenant>.<device>` goes to `devices/<device>/cmd` at
 * QoS 1; what became of it (sent, or expired before it could go) is published on
 * `iot.events.v1.command.<tenant>.<device>`. The command is acked only after both.
 */
@Controller()
export class DownlinkController {
  constructor(
    private readonly mqtt: MqttIngest,
    @Inject(PUBLISHER) private readonly publisher: JetStreamPublisher,
  ) {}

  @EventPattern(Consumers.mqttBridgeCommands.durable, extras)
  async onCommand(@Payload() cmd: DeviceCommand, @Ctx() meta: MessageMeta): Promise<void> {
    const now = Date.now();
    let result: CommandResult;
    if (cmd.expires_at && Date.parse(cmd.expires_at) <= now) {
      result = {
        command_id: cmd.command_id,
        device: meta.device,
        status: 'expired',
        at: new Date(now).toISOString(),
        detail: `expired at ${cmd.expires_at}`,
      };
    } else {
      await this.mqtt.publishToDevice(`devices/${meta.device}/cmd`, JSON.stringify(cmd));
      result = {
        command_id: cmd.command_id,
        device: meta.device,
        status: 'sent',
        at: new Date().toISOString(),
      };
    }
    await this.publisher.publishJson(Subjects.commandResult(meta.tenant, meta.device), result, {
      msgId: `command:${meta.tenant}:${cmd.command_id}:${result.status}`,
      traceparent: meta.traceparent,
      headers: { [Headers.tenant]: meta.tenant, [Headers.device]: meta.device },
    });
  }
}
