// Lint: typescript-eslint's recommended rules, Prettier for formatting, and Nx module
// boundaries so that apps depend on libs, libs never on apps, and domain libs stay free of
// transports (see the tags in each project's package.json).
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

const scopes = [
  'mqtt-bridge',
  'demux',
  'normalizer',
  'tsdb-writer',
  'asset-worker',
  'event-engine',
  'broadcaster',
  'auth',
  'config',
];

/** Which kinds of project may depend on which; tests may also use the `type:testing` harness. */
function boundaries(forTests) {
  const t = (tags) => (forTests ? [...tags, 'type:testing'] : tags);
  return {
    enforceBuildableLibDependency: false,
    allow: [],
    depConstraints: [
      {
        sourceTag: 'type:app',
        onlyDependOnLibsWithTags: t([
          'type:runtime',
          'type:domain',
          'type:data-access',
          'type:util',
          'type:contracts',
        ]),
      },
      {
        sourceTag: 'type:tool',
        onlyDependOnLibsWithTags: [
          'type:runtime',
          'type:domain',
          'type:data-access',
          'type:util',
          'type:contracts',
          'type:testing',
        ],
      },
      {
        sourceTag: 'type:runtime',
        onlyDependOnLibsWithTags: t(['type:data-access', 'type:util', 'type:contracts']),
      },
      {
        sourceTag: 'type:data-access',
        onlyDependOnLibsWithTags: t(['type:data-access', 'type:util', 'type:contracts', 'type:domain']),
      },
      { sourceTag: 'type:domain', onlyDependOnLibsWithTags: t(['type:domain', 'type:contracts']) },
      { sourceTag: 'type:util', onlyDependOnLibsWithTags: t(['type:util', 'type:contracts']) },
      { sourceTag: 'type:contracts', onlyDependOnLibsWithTags: t(['type:contracts']) },
      {
        sourceTag: 'type:testing',
        onlyDependOnLibsWithTags: ['type:util', 'type:contracts', 'type:data-access'],
      },
      { sourceTag: 'scope:shared', onlyDependOnLibsWithTags: ['scope:shared'] },
      // The benchmarks send the writer's own statements (`bench writes`), not a copy of them.
      { sourceTag: 'scope:bench', onlyDependOnLibsWithTags: ['scope:shared', 'scope:tsdb-writer'] },
      ...scopes.map((scope) => ({
        sourceTag: `scope:${scope}`,
        // The control plane checks each service's configuration with that service's own
        // domain rules (a normalizer profile with the normalizer's units) before storing it;
        // demux may normalize in its own process (NORMALIZE_IN_DEMUX, docs/adr/0006).
        onlyDependOnLibsWithTags:
          scope === 'config' || scope === 'demux'
            ? [`scope:${scope}`, 'scope:shared', 'scope:normalizer']
            : [`scope:${scope}`, 'scope:shared'],
      })),
      { sourceTag: 'platform:node', onlyDependOnLibsWithTags: ['platform:node'] },
    ],
  };
}

export default [
  {
    ignores: [
      '**/node_modules/**',
      '**/dist/**',
      '.platform/**',
      '.state/**',
      '.nx/**',
      'k8s/**',
      'deploy/**',
      'bench/**',
      'firmware/**',
    ],
  },
  ...tseslint.configs.recommended,
  prettier,
  {
    files: ['**/*.ts'],
    plugins: { '@nx': nx },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@nx/enforce-module-boundaries': ['error', boundaries(false)],
    },
  },
  {
    files: ['**/*.spec.ts', '**/*.int-spec.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Tests of any project may use the real-server harness.
      '@nx/enforce-module-boundaries': ['error', boundaries(true)],
    },
  },
  {
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
];
