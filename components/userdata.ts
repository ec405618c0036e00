/**
 * The worker's cloud-config, built by a pure function so tests can read it
 * and CI can validate it with `cloud-init schema`. It installs the SSM agent
 * (Debian's AMI has none; AWS publishes the .deb in each region's own
 * bucket), the PostgreSQL client tools of the target's major (from the PGDG
 * apt repository, set up by Debian's own postgresql-common script), Node, and
 * the pgrelocate CLI from its packed tarball in the stack's private bucket,
 * checked against its SHA-256; formats and mounts the data disk; and installs
 * a systemd template unit that runs pgrelocate commands as long jobs.
 * Credentials are never in it: the unit reads the source and target URLs from
 * SSM Parameter Store when it starts.
 */
import { stringify } from 'yaml';

export interface UserDataArgs {
  /** Major version of the client tools to install (the newest involved: the target's). */
  readonly clientMajor: number;
  readonly strategy: 'logical' | 'dump-restore' | 'pglogical' | 'bucardo';
  /** The packed pgrelocate CLI (`npm run pack:worker`) as a private S3 object, and its SHA-256. */
  readonly cliPackage: { readonly bucket: string; readonly key: string; readonly sha256: string };
  readonly region: string;
  /** SSM parameter names (SecureString) holding the source and target URLs. */
  readonly sourceUrlParameter: string;
  readonly targetUrlParameter: string;
  /** Where the data disk is mounted. */
  readonly dataDir?: string;
}

/** Debian packages the worker needs for a strategy. */
export function workerPackages(args: Pick<UserDataArgs, 'clientMajor' | 'strategy'>): string[] {
  // No npm: the CLI comes as a tarball with its dependencies bundled.
  const pkgs = [`postgresql-client-${args.clientMajor}`, 'nodejs', 'awscli'];
  if (args.strategy === 'pglogical') pkgs.push(`postgresql-${args.clientMajor}-pglogical`);
  // Bucardo's control database: a local server with PL/Perl (the engine checks both) and Bucardo itself.
  if (args.strategy === 'bucardo') pkgs.push(`postgresql-${args.clientMajor}`, `postgresql-plperl-${args.clientMajor}`, 'bucardo');
  return pkgs;
}

/**
 * Bucardo's control server on the worker: the cluster Debian made when the
 * server package was installed, and a superuser for pgrelocate with a password
 * made here and kept in a root-only passfile (never in user-data, argv, logs
 * or a URL: the SQL reaches psql on stdin from a shell builtin). Every command
 * gets `PGRELOCATE_BUCARDO_URL` without a password and `PGPASSFILE` pointing
 * at that file, which the engine reads as libpq does (cleanup drops the
 * control database with them). TCP on 127.0.0.1, where Debian's pg_hba asks
 * for a password: the `bucardo` role the engine creates logs in the same way.
 */
const BUCARDO_CONTROL = `#!/bin/sh
set -eu
MAJOR="$1"
ENV=/etc/pgrelocate/bucardo.env
PASSFILE=/etc/pgrelocate/bucardo.pgpass
pg_ctlcluster "$MAJOR" main start 2>/dev/null || true
PORT=$(pg_conftool -s "$MAJOR" main show port)
[ -s "$ENV" ] && exit 0
PW=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
printf "CREATE ROLE pgrelocate_control SUPERUSER LOGIN PASSWORD '%s';\n" "$PW" | runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres
umask 077
printf '127.0.0.1:%s:*:pgrelocate_control:%s\n' "$PORT" "$PW" > "$PASSFILE"
printf 'PGRELOCATE_BUCARDO_URL=postgresql://pgrelocate_control@127.0.0.1:%s/postgres\nPGPASSFILE=%s\n' "$PORT" "$PASSFILE" > "$ENV"
`;

const DISK_SCRIPT = `#!/bin/sh
# Format and mount the first empty non-root disk (EBS on Nitro shows up as NVMe).
set -eu
DIR="$1"
mkdir -p "$DIR"
mountpoint -q "$DIR" && exit 0
ROOT=$(lsblk -no PKNAME "$(findmnt -no SOURCE /)")
for d in $(lsblk -dpno NAME,TYPE | awk '$2=="disk"{print $1}'); do
  [ "$(basename "$d")" = "$ROOT" ] && continue
  [ -n "$(lsblk -no FSTYPE "$d" | tr -d '[:space:]')" ] && continue
  mkfs.ext4 -q -L pgrelocate-data "$d"
  break
done
echo "LABEL=pgrelocate-data $DIR ext4 defaults,nofail,noatime 0 2" >> /etc/fstab
mount "$DIR"
`;

// The SSM agent: AWS's own package from the region's bucket (the documented install for Debian).
const SSM_AGENT = `#!/bin/sh
set -eu
REGION="$1"
ARCH=$(dpkg --print-architecture)
f=$(mktemp)
curl -fsS --retry 10 --retry-all-errors -o "$f" "https://s3.$REGION.amazonaws.com/amazon-ssm-$REGION/latest/debian_$ARCH/amazon-ssm-agent.deb"
dpkg -i "$f"
rm -f "$f"
systemctl enable --now amazon-ssm-agent
`;

// The CLI: the stack's own tarball, refused unless its SHA-256 is the one the stack uploaded.
const CLI_INSTALL = `#!/bin/sh
set -eu
REGION="$1"; URI="$2"; SHA256="$3"
f=$(mktemp)
aws s3 cp --only-show-errors --region "$REGION" "$URI" "$f"
echo "$SHA256  $f" | sha256sum -c --quiet -
rm -rf /opt/pgrelocate
mkdir -p /opt/pgrelocate
tar -xzf "$f" -C /opt/pgrelocate --strip-components=1 --no-same-owner
rm -f "$f"
ln -sf /opt/pgrelocate/bin/pgrelocate.js /usr/local/bin/pgrelocate
pgrelocate --version
`;

function runScript(args: UserDataArgs, dataDir: string): string {
  // bash for mapfile: the arguments come NUL-separated, so a hook with spaces or quotes stays one argument.
  return `#!/bin/bash
# Run one pgrelocate command with the URLs fetched from SSM at start (never stored on disk).
set -eu
. /etc/pgrelocate/env
COMMAND="$1"
ARGS=()
if [ -f "/etc/pgrelocate/args-$COMMAND" ]; then mapfile -d '' -t ARGS < "/etc/pgrelocate/args-$COMMAND"; fi
url() { aws ssm get-parameter --region "$PGRELOCATE_REGION" --with-decryption --name "$1" --query Parameter.Value --output text; }
PGRELOCATE_SOURCE_URL=$(url "$PGRELOCATE_SOURCE_PARAM")
PGRELOCATE_TARGET_URL=$(url "$PGRELOCATE_TARGET_PARAM")
export PGRELOCATE_SOURCE_URL PGRELOCATE_TARGET_URL
export PGRELOCATE_WORK_DIR=${dataDir}/work
# fixes name Pulumi config keys (pgrelocate:options.maxLag), not CLI flags
export PGRELOCATE_FRONT_END=pulumi
# bucardo: the local control server's URL and its root-only passfile (made at boot)
if [ -f /etc/pgrelocate/bucardo.env ]; then . /etc/pgrelocate/bucardo.env; export PGRELOCATE_BUCARDO_URL PGPASSFILE; fi
mkdir -p "$PGRELOCATE_WORK_DIR"
exec pgrelocate "$COMMAND" "\${ARGS[@]}" --json
`;
}

const UNIT = (dataDir: string): string => `[Unit]
Description=pgrelocate %i
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
ExecStart=/usr/local/bin/pgrelocate-run %i
StandardOutput=append:${dataDir}/logs/%i.json
StandardError=append:${dataDir}/logs/%i.log
Restart=no
TimeoutStopSec=120
KillSignal=SIGTERM

[Install]
WantedBy=multi-user.target
`;

/** The cloud-config document (YAML with its `#cloud-config` header). */
export function renderUserData(args: UserDataArgs): string {
  const dataDir = args.dataDir ?? '/data';
  const env = [
    `PGRELOCATE_REGION=${args.region}`,
    `PGRELOCATE_SOURCE_PARAM=${args.sourceUrlParameter}`,
    `PGRELOCATE_TARGET_PARAM=${args.targetUrlParameter}`,
    `PGRELOCATE_STRATEGY=${args.strategy}`,
  ].join('\n');
  const doc = {
    package_update: true,
    packages: ['postgresql-common', 'ca-certificates', 'gnupg', 'curl'],
    write_files: [
      { path: '/usr/local/sbin/pgrelocate-ssm-agent', permissions: '0755', owner: 'root:root', content: SSM_AGENT },
      { path: '/usr/local/sbin/pgrelocate-install', permissions: '0755', owner: 'root:root', content: CLI_INSTALL },
      { path: '/usr/local/sbin/pgrelocate-disk', permissions: '0755', owner: 'root:root', content: DISK_SCRIPT },
      { path: '/usr/local/bin/pgrelocate-run', permissions: '0755', owner: 'root:root', content: runScript(args, dataDir) },
      { path: '/etc/pgrelocate/env', permissions: '0644', owner: 'root:root', content: env + '\n' },
      { path: '/etc/systemd/system/pgrelocate@.service', permissions: '0644', owner: 'root:root', content: UNIT(dataDir) },
      ...(args.strategy === 'bucardo'
        ? [{ path: '/usr/local/sbin/pgrelocate-bucardo-control', permissions: '0755', owner: 'root:root', content: BUCARDO_CONTROL }]
        : []),
    ],
    runcmd: [
      // The agent first: SendCommand reaches the worker as soon as it registers (the script then waits for cloud-init).
      ['/usr/local/sbin/pgrelocate-ssm-agent', args.region],
      ['/usr/local/sbin/pgrelocate-disk', dataDir],
      ['mkdir', '-p', `${dataDir}/logs`, `${dataDir}/work`],
      // Debian's postgresql-common ships the script that adds the PGDG repository.
      ['sh', '-c', 'for s in /usr/share/postgresql-common/pgdg/*.sh; do sh "$s" -y; done'],
      ['sh', '-c', `DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${workerPackages(args).join(' ')}`],
      ['/usr/local/sbin/pgrelocate-install', args.region, `s3://${args.cliPackage.bucket}/${args.cliPackage.key}`, args.cliPackage.sha256],
      ...(args.strategy === 'bucardo' ? [['/usr/local/sbin/pgrelocate-bucardo-control', String(args.clientMajor)]] : []),
      ['systemctl', 'daemon-reload'],
    ],
  };
  return '#cloud-config\n' + stringify(doc, { lineWidth: 0 });
}
