/** `node dist/libs/persistence/src/cli.js migrate`: applies pending migrations to DATABASE_URL. */
import { runMigrations } from './data-source';

async function main() {
  const [command] = process.argv.slice(2);
  const url = process.env.DATABASE_URL;
  if (command !== 'migrate') {
    process.stderr.write('usage: cli migrate   (applies pending migrations to $DATABASE_URL)\n');
    process.exit(2);
  }
  if (!url) {
    process.stderr.write(
      'DATABASE_URL is not set: give the PostgreSQL URL, e.g. postgres://user:pass@host:5432/iot\n',
    );
    process.exit(2);
  }
  const ran = await runMigrations(url);
  process.stdout.write(ran.length ? `applied: ${ran.join(', ')}\n` : 'schema is up to date\n');
}

main().catch((e) => {
  process.stderr.write(`migration failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
