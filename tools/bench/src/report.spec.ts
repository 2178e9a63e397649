import { formatReport, newReport } from './report';

describe('formatReport', () => {
  it("names the servers' versions after the machine, where the run asked them", () => {
    const report = newReport('e2e');
    report.servers = { nats_server: '2.9.10', postgres: '15.14', mosquitto: '2.0.11' };
    expect(formatReport(report).split('\n')[0]).toMatch(
      /^e2e \(.+, \d+ cores, Node v\d+\.\d+\.\d+, nats-server 2\.9\.10, PostgreSQL 15\.14, mosquitto 2\.0\.11\)$/,
    );
    report.servers = { nats_server: '2.10.24', postgres: '16.6', timescaledb: '2.17.2' };
    expect(formatReport(report).split('\n')[0]).toContain(
      ', nats-server 2.10.24, PostgreSQL 16.6 with TimescaleDB 2.17.2)',
    );
  });

  it('keeps the header as it was for a run without them (older results, compare)', () => {
    expect(formatReport(newReport('query')).split('\n')[0]).toMatch(/^query \(.+, Node v[\d.]+\)$/);
  });
});
