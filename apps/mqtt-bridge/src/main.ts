import { runService, type ServiceDefinition } from '@iot/service-runtime';
import { bridgeEnv } from './env';
import { HTTP_INGEST_ROUTE } from './http-ingest.controller';
import { MqttBridgeModule } from './mqtt-bridge.module';

export const mqttBridge: ServiceDefinition<typeof bridgeEnv> = {
  name: 'mqtt-bridge',
  description: 'MQTT to JetStream; QoS 1 acknowledged only once JetStream holds the message.',
  env: bridgeEnv,
  // Downlink commands arrive on a JetStream consumer.
  consumes: true,
  module: () => MqttBridgeModule,
  // HTTP ingest takes the device's payload as bytes, like MQTT; over the limit is a 413 there.
  rawBodyRoutes: { paths: [`/${HTTP_INGEST_ROUTE}`], limitBytes: 1024 * 1024 },
};

if (require.main === module) runService(mqttBridge);
