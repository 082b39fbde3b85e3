/**
 * `npm run bench [-- --quick] [--only copy,workflows,compression] [--baseline REV] [--no-write]`
 *
 * Measures the copies, the backup, the restore, the orchestration, a resume after a
 * SIGKILL, a fleet of backups and compression on paced links against the simulated admin
 * cluster (in a process of its own) and prints the tables; a full run of every section
 * also writes them with the machine's description to bench/RESULTS.md (a quick run or
 * `--only` never replaces it). Asserts nothing: targets are read off the figures.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { findKubectl } from '../test/sim/kubectl.js';
import { benchCompression } from './compression.js';
import { benchCopies } from './copy.js';
import { describeMachine, renderSection, renderTargets, type Section } from './report.js';
import { benchWorkflows } from './workflows.js';

const SECTIONS = ['copy', 'workflows', 'compression'] as const;
const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    baseline: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
  },
});
const only = values.only ? values.only.split(',') : [...SECTIONS];
for (const name of only) {
  if (!(SECTIONS as readonly string[]).includes(name))
    throw new Error(`--only takes ${SECTIONS.join(', ')}`);
}
const quick = values.quick;
// Interrupted: exit normally, so that the harness's exit hooks stop what it started.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

const kubectl = await findKubectl();
if (!('path' in kubectl)) throw new Error(`no kubectl: ${kubectl.missing}`);
const machine = describeMachine(kubectl.path);
const scratch = mkdtempSync(join(tmpdir(), 'bench-'));
const started = Date.now();
const sections: Section[] = [];
try {
  if (only.includes('copy')) {
    sections.push(
      await benchCopies({
        sizesMiB: quick ? [64, 512] : [64, 512, 2048],
        rounds: 2,
        kubectl: kubectl.path,
        scratch,
        baseline: values.baseline,
      }),
    );
  }
  if (only.includes('workflows')) {
    sections.push(...(await benchWorkflows({ quick, scratch })));
  }
  if (only.includes('compression')) {
    sections.push(
      await benchCompression({
        fillMiB: quick ? 128 : 256,
        linksMiBps: quick ? [50] : [0, 50, 20],
        rounds: quick ? 1 : 2,
        kubectl: kubectl.path,
        scratch,
      }),
    );
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

const minutes = ((Date.now() - started) / 60_000).toFixed(1);
const text = [
  '# Benchmarks',
  '',
  `\`npm run bench${quick ? ' -- --quick' : ''}\`${values.baseline ? ` with \`--baseline ${values.baseline}\`` : ''}, ${new Date().toISOString()}, ${minutes} min.`,
  '',
  ...machine.map((line) => `- ${line}`),
  '',
  renderTargets(sections.flatMap((s) => s.targets ?? [])),
  '',
  ...sections.map(renderSection).flatMap((s) => [s, '']),
].join('\n');
console.log(`\n${text}`);
// A quick run (or one section) prints its tables only: bench/RESULTS.md keeps a full run's.
if (!values['no-write'] && !quick && values.only === undefined) {
  writeFileSync(fileURLToPath(new URL('RESULTS.md', import.meta.url)), text);
  console.log('bench: written to bench/RESULTS.md');
}
