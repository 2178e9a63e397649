import { Module } from '@nestjs/common';
import { MqttIngest } from './mqtt-ingest';

@Module({ providers: [MqttIngest] })
export class MqttBridgeModule {}
