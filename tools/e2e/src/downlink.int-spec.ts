import { spawn } from 'node:child_process';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { sleep, waitFor } from '@iot/testing';
import { startPipeline, type Pipeline } from './pipeline';

describe('downlink commands', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await startPipeline([{ device: 'valve-1', tenant: 'plant', model: 'generic', state: 'active' }]);
  });
  afterAll(async () => {
    await p?.stop();
  });

  it('sends a command to devices/<id>/cmd at QoS 1 and reports it sent; an expired one is reported expired, not sent', async () => {
    const device = spawn('mosquitto_sub', [
      '-L',
      `${p.mqtt.url}/devices/valve-1/cmd`,
      '-q',
      '1',
      '-i',
      'valve-1',
      '-C',
      '1',
      '-W',
      '20',
    ]);
    let received = '';
    device.stdout.on('data', (d) => (received += d));
    await sleep(500);

    const nc = await connect({ servers: p.nats.urls });
    try {
      const js = jetstream(nc);
      const expired = {
        command_id: 'c-0',
        name: 'open',
        expires_at: new Date(Date.now() - 1000).toISOString(),
      };
      const open = { command_id: 'c-1', name: 'open', params: { percent: 40 } };
      await js.publish('iot.cmd.v1.plant.valve-1', JSON.stringify(expired), { msgID: 'c-0' });
      await js.publish('iot.cmd.v1.plant.valve-1', JSON.stringify(open), { msgID: 'c-1' });
      await new Promise((r) => device.once('exit', r));
      expect(JSON.parse(received)).toEqual(open);

      const jsm = await jetstreamManager(nc);
      const results = async () =>
        (await jsm.streams.info('EVENTS_V1', { subjects_filter: 'iot.events.v1.command.plant.valve-1' }))
          .state.messages;
      await waitFor('two command results', async () => (await results()) === 2, 10_000);
      const statuses: string[] = [];
      for (let seq = 1; seq <= 2; seq++) {
        const m = await jsm.streams.getMessage('EVENTS_V1', { seq });
        const r = m!.json<{ command_id: string; status: string }>();
        statuses.push(`${r.command_id}:${r.status}`);
      }
      expect(statuses.sort()).toEqual(['c-0:expired', 'c-1:sent']);
    } finally {
      await nc.close();
    }
  });
});
