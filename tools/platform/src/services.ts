/** The nine services, their default local HTTP ports, and the extra environment each needs. */
export interface ServiceSpec {
  name: string;
  port: number;
  needs: Array<'database' | 'mqtt'>;
}

export const SERVICES: ServiceSpec[] = [
  { name: 'tsdb-writer', port: 3013, needs: ['database'] },
  { name: 'normalizer', port: 3012, needs: [] },
  { name: 'demux', port: 3011, needs: [] },
  { name: 'mqtt-bridge', port: 3010, needs: ['mqtt'] },
  { name: 'asset-worker', port: 3014, needs: [] },
  { name: 'event-engine', port: 3015, needs: [] },
  { name: 'broadcaster', port: 3002, needs: [] },
  { name: 'auth', port: 3017, needs: ['database'] },
  { name: 'config', port: 3018, needs: [] },
];

/** The local profile: tenant `demo`, 100 simulated devices and 20 idle ones to try things with. */
export const DEMO_TENANT = 'demo';
export const DEMO_MODEL = 'zenthos-esp32';
export const SIMULATED_DEVICES = 100;
export const IDLE_DEVICES = 20;
