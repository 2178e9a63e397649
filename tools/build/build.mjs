// Transpiles every app, lib and tool to dist/ with swc (type-checking is `npm run typecheck`).
// The @iot/* aliases are rewritten to relative paths (.swcrc `paths`), so dist/ runs on plain node.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
rmSync(join(root, 'dist'), { recursive: true, force: true });
execFileSync(
  process.execPath,
  [
    join(root, 'node_modules', '@swc', 'cli', 'bin', 'swc.js'),
    'apps',
    'libs',
    'tools',
    '-d',
    'dist',
    '--config-file',
    '.swcrc',
    '--ignore',
    '**/*.spec.ts,**/*.int-spec.ts,**/node_modules/**',
    '--only',
    '**/*.ts',
    '--quiet',
  ],
  { cwd: root, stdio: 'inherit' },
);
