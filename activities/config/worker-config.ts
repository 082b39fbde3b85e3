/**
 * What the worker may touch, by name: its admin clusters (kubeconfig, profile, which
 * namespaces are user clusters, how SSH reaches the control-plane node), its backup
 * repositories, its import inbox. Workflow
 * inputs carry only these names; paths, images, endpoints and credentials come from here.
 *
 * Read once at start from a YAML (or JSON) file, `ETCD_HA_RESTORE_CONFIG`, validated with
 * zod; a bad file stops the worker with a message naming the field. Without a file, the
 * environment describes a one-admin-cluster worker: `ADMIN_CLUSTER_KUBECONFIG`,
 * `BACKUP_DIR`, `IMPORT_INBOX` (admin cluster and repository are then both named
 * `default`). The CLI reads the same file to list backups as the worker sees them.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import {
  absolutePath,
  adminEtcdProfileOverridesSchema,
  clusterProfileOverridesSchema,
  clusterProfilePatchSchema,
  dnsLabel,
  parseOrFail,
} from '../../workflows/contract/index.js';

/** A host name or an IP address (IPv6 without brackets): nothing a shell or SSH would parse. */
const hostSchema = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9._:-]+$/, 'must be a host name or an IP address');

/** An SSH host key's fingerprint as `ssh-keygen -lf` prints it: `SHA256:` and unpadded base64. */
export const hostKeyFingerprintSchema = z
  .string()
  .regex(
    /^SHA256:[A-Za-z0-9+/]{43}$/,
    'must be a SHA256 fingerprint as ssh-keygen -lf prints it (SHA256:...)',
  );

/** How one SSH server is reached and trusted: its host key is checked, never accepted blindly. */
const sshServerFields = {
  host: hostSchema,
  port: z.number().int().min(1).max(65535).default(22),
  /** The runbook logs in as `ubuntu`. */
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]*[$]?$/, 'must be a POSIX user name')
    .max(32)
    .default('ubuntu'),
  /** The private key (SSH_PRIVATE_KEY) on the worker, readable by the worker only. */
  privateKeyPath: absolutePath,
  /** An OpenSSH known_hosts file that lists this host's key (hashed names are understood)... */
  knownHostsPath: absolutePath.optional(),
  /** ...or the key's pinned fingerprint (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`). */
  hostKeyFingerprint: hostKeyFingerprintSchema.optional(),
};
const exactlyOneTrust = (s: { knownHostsPath?: string; hostKeyFingerprint?: string }) =>
  (s.knownHostsPath === undefined) !== (s.hostKeyFingerprint === undefined);
const trustMessage = {
  message:
    'give exactly one of knownHostsPath or hostKeyFingerprint: the host key is always checked',
};

const sshServerSchema = z.strictObject(sshServerFields).refine(exactlyOneTrust, trustMessage);

/**
 * SSH to the admin control-plane node (SPEC A2: EXTERNAL_IP, SSH_PRIVATE_KEY, JUMP_IP), for
 * the copy of its PKI directory. The copy runs `sudo -n tar -C <parent> -cf - <dir>` and
 * changes nothing on the node.
 */
export const adminSshSchema = z
  .strictObject({
    ...sshServerFields,
    /** A jump host on the way (JUMP_IP), checked the same way. */
    jumpHost: sshServerSchema.optional(),
    /** The node's PKI directory (kubeadm's). */
    pkiDir: absolutePath
      .refine((p) => p !== '/' && !p.endsWith('/'), 'must name a directory, not end with /')
      .default('/etc/kubernetes/pki'),
    /** Run tar with `sudo -n` (the directory is root's); false when `user` is root. */
    sudo: z.boolean().default(true),
  })
  .refine(exactlyOneTrust, trustMessage);
export type AdminSshConfig = z.output<typeof adminSshSchema>;
export type SshServerConfig = Omit<AdminSshConfig, 'jumpHost' | 'pkiDir' | 'sudo'>;

const adminClusterSchema = z
  .strictObject({
    /** The admin cluster's kubeconfig on the worker (ADMIN_CLUSTER_KUBECONFIG). */
    kubeconfig: absolutePath.optional(),
    /**
     * Instead of a kubeconfig: the worker runs in a pod of this admin cluster and uses its
     * service account (deploy/): the API server from KUBERNETES_SERVICE_HOST/PORT, the
     * token and CA mounted at /var/run/secrets/kubernetes.io/serviceaccount/.
     */
    inCluster: z.literal(true).optional(),
    /** What differs from GKE on-prem's names, paths, endpoints and images. */
    profile: clusterProfileOverridesSchema.optional(),
    /**
     * Which namespaces are user clusters: a list, or those whose labels match; by default
     * every namespace holding the profile's etcd StatefulSet (kube-etcd).
     */
    userClusters: z
      .union([
        z.strictObject({ namespaces: z.array(dnsLabel).min(1) }),
        z.strictObject({ labelSelector: z.string().min(1) }),
      ])
      .optional(),
    /**
     * What differs for one user cluster from `profile` (rarely needed: a user cluster of
     * another layout; the simulated admin cluster gives each user cluster its own ports).
     */
    userClusterProfiles: z.record(dnsLabel, clusterProfilePatchSchema).optional(),
    /** Where the admin cluster's own etcd is (A3): kubeadm's pod and paths unless overridden. */
    adminEtcd: adminEtcdProfileOverridesSchema.optional(),
    /** How the admin control-plane node is reached for its PKI (A2); no admin backup without it. */
    ssh: adminSshSchema.optional(),
    /**
     * How snapshot copies to and from this admin cluster's pods cross the wire: `gzip` for a
     * slow link to its API server (bench/RESULTS.md measures where it pays), `none` (the
     * default) for a fast one, where gzip only costs CPU in the pod and on the worker.
     */
    copyCompression: z.enum(['none', 'gzip']).default('none'),
  })
  .refine(
    (c) => (c.kubeconfig === undefined) !== (c.inCluster === undefined),
    "give exactly one of kubeconfig (a file on the worker) and inCluster: true (the pod's service account)",
  );

const repositorySchema = z.strictObject({
  /** A directory on the worker's disk, outside the cluster (B4); created 0700. */
  path: absolutePath,
});

export const workerConfigSchema = z.strictObject({
  /** A worker needs at least one (checked when it starts); the CLI's listing needs none. */
  adminClusters: z.record(dnsLabel, adminClusterSchema),
  repositories: z
    .record(dnsLabel, repositorySchema)
    .refine((r) => Object.keys(r).length > 0, 'name at least one repository'),
  /** Where an operator puts a snapshot file to restore from (`backup.importFile`). */
  importInbox: absolutePath.optional(),
});
export type WorkerConfig = z.output<typeof workerConfigSchema>;
export type WorkerConfigInput = z.input<typeof workerConfigSchema>;
export type AdminClusterConfig = WorkerConfig['adminClusters'][string];

const envSchema = z.object({
  ETCD_HA_RESTORE_CONFIG: absolutePath.optional(),
  ADMIN_CLUSTER_KUBECONFIG: absolutePath.optional(),
  BACKUP_DIR: absolutePath.optional(),
  IMPORT_INBOX: absolutePath.optional(),
  XDG_DATA_HOME: absolutePath.optional(),
});

/** The configuration from `ETCD_HA_RESTORE_CONFIG`, or else from the environment alone. */
export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const vars = parseOrFail(
    envSchema,
    env,
    (issues) => new Error(`invalid configuration in the environment: ${issues}`),
  );
  if (vars.ETCD_HA_RESTORE_CONFIG) {
    const alsoGiven = (['ADMIN_CLUSTER_KUBECONFIG', 'BACKUP_DIR', 'IMPORT_INBOX'] as const).filter(
      (name) => vars[name] !== undefined,
    );
    if (alsoGiven.length > 0) {
      throw new Error(
        `${alsoGiven.join(', ')} and ETCD_HA_RESTORE_CONFIG are both set: put everything in the file`,
      );
    }
    return readWorkerConfigFile(vars.ETCD_HA_RESTORE_CONFIG);
  }
  const dataHome = vars.XDG_DATA_HOME ?? join(env.HOME ?? homedir(), '.local', 'share');
  return parseWorkerConfig(
    {
      adminClusters: vars.ADMIN_CLUSTER_KUBECONFIG
        ? { default: { kubeconfig: vars.ADMIN_CLUSTER_KUBECONFIG } }
        : {},
      repositories: {
        default: { path: vars.BACKUP_DIR ?? join(dataHome, 'etcd-ha-restore', 'backups') },
      },
      ...(vars.IMPORT_INBOX ? { importInbox: vars.IMPORT_INBOX } : {}),
    },
    'the environment (ADMIN_CLUSTER_KUBECONFIG, BACKUP_DIR, IMPORT_INBOX)',
  );
}

/** Reads and validates a configuration file; a message names the file and each bad field. */
export function readWorkerConfigFile(path: string): WorkerConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the worker configuration ${path}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new Error(`the worker configuration ${path} is not YAML: ${(error as Error).message}`);
  }
  return parseWorkerConfig(raw, path);
}

export function parseWorkerConfig(raw: unknown, source: string): WorkerConfig {
  return parseOrFail(
    workerConfigSchema,
    raw,
    (issues) => new Error(`invalid worker configuration in ${source}: ${issues}`),
  );
}
