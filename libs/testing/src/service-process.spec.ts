import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SERVICE_NODE_FLAGS, SERVICE_NODE_OPTIONS } from './service-process';

/**
 * The services run locally (tests, bench, `./platform up`) with the heap settings of the
 * image they are deployed in: a figure measured here holds in the pods only if both agree.
 */
describe('the services’ Node settings', () => {
  const dockerfile = readFileSync(join(__dirname, '..', '..', '..', 'Dockerfile'), 'utf8');

  it('are the Dockerfile’s NODE_OPTIONS', () => {
    expect(dockerfile).toMatch(/NODE_OPTIONS="([^"]*)"/);
    expect(/NODE_OPTIONS="([^"]*)"/.exec(dockerfile)![1]).toBe(SERVICE_NODE_OPTIONS);
  });

  it('put the flags Node refuses in NODE_OPTIONS before the script in the Dockerfile’s ENTRYPOINT', () => {
    const entrypoint = /^ENTRYPOINT .*exec node (.*?) ?dist\/apps\/\$APP\/src\/main\.js/m.exec(dockerfile);
    expect(entrypoint?.[1]?.split(' ')).toEqual(SERVICE_NODE_FLAGS);
  });
});
