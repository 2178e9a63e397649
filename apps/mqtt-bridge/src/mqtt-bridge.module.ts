import { Module } from '@nestjs/common';
import { DeviceGate } from './device-gate';
import { DownlinkController } from './downlink.controller';
import { HttpIngestController } from './http-ingest.controller';
import { MqttIngest } from './mqtt-ingest';
import { RawStreamGate } from './raw-stream-gate';

@Module({
  controllers: [DownlinkController, HttpIngestController],
  providers: [DeviceGate, MqttIngest, RawStreamGate],
})
export class MqttBridgeModule {}
