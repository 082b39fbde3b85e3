/**
 * Container images: what a container sees as its file system, chosen by the pod's image
 * reference. There is no registry and no pulling; an image is a recipe for the sandbox:
 *
 * - `debian` (the default for any image the simulator does not know): the host's /usr
 *   read-only with the Debian /bin, /sbin, /lib, /lib64 symlinks: sh, coreutils, etcdctl...
 *   With an etcd release other than the host's, that release's etcd, etcdctl (and etcdutl)
 *   are in /usr/local/bin and also cover /usr/bin/etcd and /usr/bin/etcdctl.
 * - `distroless`: only etcd, etcdctl (and etcdutl from 3.5 on) in /usr/local/bin, and the
 *   C library when the binaries need one (gcr.io/distroless/base); no sh, no env, no
 *   coreutils. Upstream etcd images are like this from 3.5 on.
 * - `busybox`: Debian's BusyBox applets in /bin, except `flock` and `stat`, and an `mv`
 *   without `-T` (as the BusyBox builds that have no GNU options), plus etcdctl (and
 *   etcdutl) in /usr/local/bin.
 *
 * An image also decides the entrypoint of a container without a `command`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { chmod, copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { type EtcdLine, etcdRelease } from '../harness/tools.js';

export type { EtcdLine };
export type EtcdImageKind = 'full' | 'distroless';
export type UtilityImageKind = 'full' | 'busybox';

/** Host paths of one etcd release's binaries. */
export interface EtcdBinaries {
  line: EtcdLine;
  version: string;
  etcd: string;
  etcdctl: string;
  /** 3.5 and later. */
  etcdutl?: string;
}

/** The binaries of an etcd release line, as scripts/provision.sh recorded them. */
export function etcdBinaries(line: EtcdLine): EtcdBinaries {
  try {
    const r = etcdRelease(line);
    return {
      line,
      version: r.version,
      etcd: r.etcd,
      etcdctl: r.etcdctl,
      ...(r.etcdutl ? { etcdutl: r.etcdutl } : {}),
    };
  } catch (e) {
    // Debian's 3.4 needs no provisioned build; the simulator ran it before .tools.json existed.
    if (line === '3.4' && existsSync('/usr/bin/etcd') && existsSync('/usr/bin/etcdctl')) {
      return { line, version: '3.4', etcd: '/usr/bin/etcd', etcdctl: '/usr/bin/etcdctl' };
    }
    throw e;
  }
}

export interface Bind {
  /** File or directory on the host. */
  source: string;
  /** Absolute path inside the container. */
  target: string;
}

/** The file system and defaults of an image. */
export interface ImageFs {
  flavor: 'debian' | 'distroless' | 'busybox';
  /** The host's /usr is the image's /usr (with the Debian /bin, /sbin, /lib, /lib64 links). */
  hostUsr: boolean;
  /** Read-only binds on top of that, in order (a file over a file of /usr works). */
  binds: Bind[];
  /** PATH of the image's config (a container's env may override it). */
  path: string;
  /** Entrypoint for a container without `command`. */
  entrypoint?: string[];
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The debian image: what every container saw before images existed. */
export const HOST_IMAGE: ImageFs = {
  flavor: 'debian',
  hostUsr: true,
  binds: [],
  path: DEFAULT_PATH,
};

const libCache = new Map<string, Bind[]>();

/** The shared libraries (and the loader) a dynamically linked binary needs, via ldd. */
function sharedLibraries(binary: string): Bind[] {
  const cached = libCache.get(binary);
  if (cached) return cached;
  let out = '';
  try {
    out = execFileSync('ldd', [binary], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    out = ''; // "not a dynamic executable" exits 1
  }
  const binds: Bind[] = [];
  for (const line of out.split('\n')) {
    const m = line.match(/^\s*(?:\S+ => )?(\/\S+) \(0x/);
    if (m?.[1]) binds.push({ source: realpathSync(m[1]), target: m[1] });
  }
  libCache.set(binary, binds);
  return binds;
}

function withLibraries(binaries: Bind[]): Bind[] {
  const seen = new Set<string>();
  const out: Bind[] = [];
  for (const b of binaries) {
    for (const lib of sharedLibraries(b.source)) {
      if (seen.has(lib.target)) continue;
      seen.add(lib.target);
      out.push(lib);
    }
  }
  return [...out, ...binaries];
}

function etcdTools(bin: EtcdBinaries, withServer: boolean): Bind[] {
  return [
    ...(withServer ? [{ source: bin.etcd, target: '/usr/local/bin/etcd' }] : []),
    { source: bin.etcdctl, target: '/usr/local/bin/etcdctl' },
    ...(bin.etcdutl ? [{ source: bin.etcdutl, target: '/usr/local/bin/etcdutl' }] : []),
  ];
}

/** Where the image has etcd (for the kube-etcd command). */
export function etcdPathIn(bin: EtcdBinaries, kind: EtcdImageKind): string {
  return kind === 'full' && bin.etcd === '/usr/bin/etcd' ? '/usr/bin/etcd' : '/usr/local/bin/etcd';
}

// A BusyBox mv whose getopt knows no -T/-t, like BusyBox builds without the GNU options.
const BUSYBOX_MV = `#!/bin/sh
for a in "$@"; do
  case $a in
  --) break ;;
  --*) echo "mv: unrecognized option '$a'" >&2; bad=1; break ;;
  -?*) case $a in *[Tt]*) o=$(printf '%s' "$a" | sed 's/[^Tt]//g' | cut -c1); echo "mv: invalid option -- '$o'" >&2; bad=1; break ;; esac ;;
  esac
done
if [ -n "$bad" ]; then
  printf '%s\\n' "BusyBox v1.30.1 multi-call binary." "" "Usage: mv [-fin] SOURCE DEST" "or: mv [-fin] SOURCE... DIRECTORY" >&2
  exit 1
fi
exec /bin/busybox mv "$@"
`;

/** Images of one simulated cluster; staged files live under `<dir>/images`. */
export class Images {
  private readonly byRepository = new Map<string, ImageFs>();
  private readonly byRef = new Map<string, ImageFs>();

  constructor(private readonly dir: string) {}

  /** Every tag of `repository` is this image. */
  registerRepository(repository: string, image: ImageFs): void {
    this.byRepository.set(repository, image);
  }

  /** Exactly this reference is this image. */
  register(ref: string, image: ImageFs): void {
    this.byRef.set(ref, image);
  }

  /** The image of a reference: exact, then by repository, else the debian image. */
  resolve(ref: string | undefined): ImageFs {
    const r = ref ?? '';
    const exact = this.byRef.get(r);
    if (exact) return exact;
    const repo = repositoryOf(r);
    return this.byRepository.get(repo) ?? legacyImage(r);
  }

  /** An etcd image of a release: the debian one with that release, or distroless. */
  async etcdImage(bin: EtcdBinaries, kind: EtcdImageKind): Promise<ImageFs> {
    const entrypoint = [etcdPathIn(bin, kind)];
    if (kind === 'distroless') {
      return {
        flavor: 'distroless',
        hostUsr: false,
        binds: withLibraries(etcdTools(bin, true)),
        path: DEFAULT_PATH,
        entrypoint,
      };
    }
    return { ...(await this.debianWith(bin, true)), entrypoint };
  }

  /** A utility image: the debian one with that release's etcdctl/etcdutl, or BusyBox. */
  async utilityImage(bin: EtcdBinaries, kind: UtilityImageKind): Promise<ImageFs> {
    if (kind === 'full') return this.debianWith(bin, false);
    const busybox = ['/usr/bin/busybox', '/bin/busybox'].find((p) => existsSync(p));
    if (!busybox) {
      throw new Error(
        "sim: the busybox utility image needs Debian's busybox (/usr/bin/busybox): run 'npm run provision'",
      );
    }
    const binDir = join(this.dir, 'images', 'busybox', 'bin');
    if (!existsSync(join(binDir, 'busybox'))) {
      await mkdir(binDir, { recursive: true });
      await copyFile(realpathSync(busybox), join(binDir, 'busybox'));
      await chmod(join(binDir, 'busybox'), 0o755);
      const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' })
        .split('\n')
        .filter((a) => a && !['busybox', 'flock', 'stat', 'mv'].includes(a));
      for (const a of applets) await symlink('busybox', join(binDir, a));
      await writeFile(join(binDir, 'mv'), BUSYBOX_MV, { mode: 0o755 });
    }
    return {
      flavor: 'busybox',
      hostUsr: false,
      binds: [
        ...sharedLibraries(realpathSync(busybox)),
        { source: binDir, target: '/bin' },
        ...withLibraries(etcdTools(bin, false)),
      ],
      path: DEFAULT_PATH,
    };
  }

  private async debianWith(bin: EtcdBinaries, withServer: boolean): Promise<ImageFs> {
    if (bin.etcd === '/usr/bin/etcd' && bin.etcdctl === '/usr/bin/etcdctl') return HOST_IMAGE;
    // /usr/local/bin of the image: empty files as mount points for the binaries (binding a
    // directory of ours over the host's /usr/local/bin never creates anything on the host).
    const localBin = join(this.dir, 'images', `debian-etcd-${bin.version}`, 'usr-local-bin');
    const tools = etcdTools(bin, withServer);
    await mkdir(localBin, { recursive: true });
    for (const t of tools)
      await writeFile(join(localBin, posix.basename(t.target)), '', { mode: 0o755 });
    const binds: Bind[] = [];
    if (existsSync('/usr/local/bin')) binds.push({ source: localBin, target: '/usr/local/bin' });
    binds.push(...tools);
    // The host's /usr/bin/etcd{,ctl} are Debian's 3.4: the image has only its own release.
    if (existsSync('/usr/bin/etcd')) binds.push({ source: bin.etcd, target: '/usr/bin/etcd' });
    if (existsSync('/usr/bin/etcdctl'))
      binds.push({ source: bin.etcdctl, target: '/usr/bin/etcdctl' });
    return { flavor: 'debian', hostUsr: true, binds, path: DEFAULT_PATH };
  }
}

/** `registry/name:tag` or `name@sha256:...` → `registry/name`. */
export function repositoryOf(ref: string): string {
  const at = ref.indexOf('@');
  const noDigest = at >= 0 ? ref.slice(0, at) : ref;
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

/** Images the simulator does not know: the host's /usr; etcd images run the host's etcd. */
function legacyImage(ref: string): ImageFs {
  if (/(^|\/)etcd(:|$)/.test(ref) || (/(^|\/)etcd-[^/]*:/.test(ref) && !/etcd-util/.test(ref))) {
    return { ...HOST_IMAGE, entrypoint: ['/usr/bin/etcd'] };
  }
  return HOST_IMAGE;
}

/** A container's view of paths, for finding executables the way the runtime would. */
export interface ContainerView {
  image: ImageFs;
  rootDir: string;
  mounts: { source: string; target: string }[];
}

/** Host path that a path inside the container stands for (no symlinks followed). */
export function hostPathIn(view: ContainerView, path: string): string {
  const p = posix.normalize(path);
  const under = (prefix: string) => p === prefix || p.startsWith(`${prefix}/`);
  const mount = [...view.mounts]
    .filter((m) => under(m.target))
    .sort((a, b) => b.target.length - a.target.length)[0];
  if (mount) return join(mount.source, p.slice(mount.target.length));
  const bind = [...view.image.binds].reverse().find((b) => under(b.target));
  if (bind) return join(bind.source, p.slice(bind.target.length));
  if (view.image.hostUsr) {
    if (under('/usr')) return p;
    for (const d of ['/bin', '/sbin', '/lib', '/lib64']) if (under(d)) return `/usr${p}`;
  }
  return join(view.rootDir, p);
}

function isExecutableFile(view: ContainerView, path: string, depth = 0): boolean {
  const host = hostPathIn(view, path);
  try {
    const st = lstatSync(host);
    if (st.isSymbolicLink()) {
      // Resolved inside the container (an absolute target is a container path).
      if (depth > 16) return false;
      return isExecutableFile(
        view,
        posix.resolve(posix.dirname(path), readlinkSync(host)),
        depth + 1,
      );
    }
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * How the runtime (runc, via containerd) fails to exec `argv0` in the container, or
 * undefined if it can: `exec: "sh": executable file not found in $PATH` for a bare name,
 * `exec: "/bin/sh": stat /bin/sh: no such file or directory` for a path.
 */
export function execError(view: ContainerView, argv0: string, pathEnv: string): string | undefined {
  if (argv0.includes('/')) {
    const abs = posix.resolve('/', argv0);
    return isExecutableFile(view, abs)
      ? undefined
      : `exec: "${argv0}": stat ${argv0}: no such file or directory`;
  }
  for (const dir of pathEnv.split(':').filter(Boolean)) {
    if (isExecutableFile(view, posix.join(dir, argv0))) return undefined;
  }
  return `exec: "${argv0}": executable file not found in $PATH`;
}
