import { Module } from '@nestjs/common';
import { DownlinkController } from './downlink.controller';
import { MqttIngest } from './mqtt-ingest';

@Module({ controllers: [DownlinkController], providers: [MqttIngest] })
export class MqttBridgeModule {}
