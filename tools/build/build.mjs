// Transpiles every app, lib and tool to dist/ with swc (type-checking is `npm run typecheck`).
// The @iot/* aliases are rewritten to relative paths (.swcrc `paths`), so dist/ runs on plain node.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// The aliases live in tsconfig.base.json and in .swcrc: a library missing from .swcrc would
// build, and then fail at run time with "Cannot find module '@iot/...'".
const tsPaths = JSON.parse(readFileSync(join(root, 'tsconfig.base.json'), 'utf8')).compilerOptions.paths;
const swcPaths = JSON.parse(readFileSync(join(root, '.swcrc'), 'utf8')).jsc.paths;
const missing = Object.keys(tsPaths).filter(
  (alias) => JSON.stringify(tsPaths[alias]) !== JSON.stringify(swcPaths[alias]),
);
if (missing.length) {
  process.stderr.write(
    `.swcrc "paths" lacks or differs from tsconfig.base.json for: ${missing.join(', ')}; copy them over\n`,
  );
  process.exit(1);
}
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
