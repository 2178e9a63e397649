import { runService, type ServiceDefinition } from '@iot/service-runtime';
import { bridgeEnv } from './env';
import { MqttBridgeModule } from './mqtt-bridge.module';

export const mqttBridge: ServiceDefinition<typeof bridgeEnv> = {
  name: 'mqtt-bridge',
  description: 'MQTT to JetStream; QoS 1 acknowledged only once JetStream holds the message.',
  env: bridgeEnv,
  // Downlink commands arrive on a JetStream consumer.
  consumes: true,
  module: () => MqttBridgeModule,
};

if (require.main === module) runService(mqttBridge);
