#!/usr/bin/env bash
# Finds, or installs, every tool the tests and the demo need, prints what it found with
# versions, and writes their paths to .tools.json (read by test/harness). Idempotent: a
# second run installs nothing and reuses the cached Temporal CLI and etcd builds.
#
#   etcd, etcdctl   Debian etcd-server + etcd-client (real etcd behind the simulated pods)
#   etcd 3.5, 3.6   etcd, etcdctl and etcdutl of the versions pinned in scripts/etcd/v3.*/go.mod,
#                   built once with Go into $cache_dir/etcd-v<version>/
#   bwrap           Debian bubblewrap (the simulated kubelet's sandbox)
#   busybox         Debian busybox (the simulator's BusyBox utility image)
#   openssl, unzip  certificates for the simulated cluster; kubectl peer extraction
#   sshd, sudo      Debian openssh-server + sudo (the admin node the PKI copy test reaches, SPEC A2)
#   chromium        Debian chromium, driven headless by playwright-core (the Web UI test)
#   temporal        $TEMPORAL_CLI_PATH, else `temporal` on PATH, else a cached build of
#                   `go install github.com/temporalio/cli/cmd/temporal@v1.5.1`
set -euo pipefail

TEMPORAL_CLI_VERSION=v1.5.1
ETCD_BUILT_LINES="3.5 3.6" # one Go module each under scripts/etcd/
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache_dir=${ETCD_HA_RESTORE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/etcd-ha-restore}

fail() { echo "provision: $*" >&2; exit 1; }
say() { echo "provision: $*"; }

node_ok=$(node -e 'const [a,b]=process.versions.node.split(".").map(Number); console.log(a>20||(a===20&&b>=19)?1:0)')
[ "$node_ok" = 1 ] || fail "Node.js >= 20.19 is required (found $(node --version)); install a newer Node.js."

apt_updated=
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }
apt_install() {
  if [ -z "$apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  say "installing Debian packages: $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ensure_command COMMAND DEBIAN_PACKAGE: the command, from the package when it is missing.
ensure_command() {
  local cmd=$1 pkg=$2
  if ! command -v "$cmd" >/dev/null 2>&1; then
    can_apt || fail "'$cmd' is missing: install the Debian/Ubuntu package '$pkg' (or its equivalent) and run again."
    apt_install "$pkg"
    command -v "$cmd" >/dev/null 2>&1 || fail "installed '$pkg' but '$cmd' is still not on PATH."
  fi
}

# find_go: sets $go to `go` on PATH or /usr/local/go/bin/go, or to empty when neither exists.
find_go() {
  go=$(command -v go || true)
  [ -n "$go" ] || [ ! -x /usr/local/go/bin/go ] || go=/usr/local/go/bin/go
}

ensure_command etcd etcd-server
ensure_command etcdctl etcd-client
ensure_command bwrap bubblewrap
ensure_command busybox busybox
ensure_command openssl openssl
ensure_command unzip unzip
# sshd lives in /usr/sbin, which a non-login PATH may lack.
[ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1 || ensure_command sshd openssh-server
sshd_path=$(command -v sshd || echo /usr/sbin/sshd)
ensure_command sudo sudo
ensure_command ssh-keygen openssh-client
ensure_command chromium chromium

bwrap --ro-bind / / --dev /dev --proc /proc true 2>/dev/null ||
  fail "bwrap cannot create a sandbox here (user namespaces disabled?); the simulated cluster needs it."

# The Temporal CLI: an explicit path, one on PATH, or our cached build.
temporal=
if [ -n "${TEMPORAL_CLI_PATH:-}" ]; then
  [ -x "$TEMPORAL_CLI_PATH" ] || fail "TEMPORAL_CLI_PATH=$TEMPORAL_CLI_PATH is not an executable file."
  temporal=$TEMPORAL_CLI_PATH
elif command -v temporal >/dev/null 2>&1; then
  temporal=$(command -v temporal)
else
  temporal="$cache_dir/temporal-cli-$TEMPORAL_CLI_VERSION/temporal"
  if [ ! -x "$temporal" ]; then
    find_go
    [ -n "$go" ] || fail "no Temporal CLI found: install Go >= 1.24 (to build it) or set TEMPORAL_CLI_PATH to a 'temporal' binary."
    say "building the Temporal CLI $TEMPORAL_CLI_VERSION with $("$go" version) (a few minutes, once)..."
    build_dir=$(mktemp -d "$cache_dir.build.XXXXXX" 2>/dev/null || { mkdir -p "$cache_dir" && mktemp -d "$cache_dir/build.XXXXXX"; })
    started=$(date +%s)
    GOBIN=$build_dir CGO_ENABLED=0 "$go" install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION" ||
      { rm -rf "$build_dir"; fail "building the Temporal CLI failed (see above); set TEMPORAL_CLI_PATH to skip the build."; }
    mkdir -p "$(dirname "$temporal")"
    mv "$build_dir/temporal" "$temporal" # rename: an interrupted build never leaves half a binary
    rmdir "$build_dir"
    say "built the Temporal CLI in $(($(date +%s) - started)) s"
  fi
fi
temporal_version=$("$temporal" --version 2>&1 | head -n 1)
case "$temporal_version" in
*Server*) ;;
*) fail "$temporal does not look like the Temporal CLI ('$temporal --version' said: $temporal_version)." ;;
esac

# etcd 3.5 and 3.6: each line's pinned module (scripts/etcd/v<line>) built once into
# $cache_dir/etcd-v<version>/. The directory keeps a hash of the module's files, so an edit
# to a wrapper or go.mod rebuilds; a build goes to a temp dir that is renamed into place.
etcd_build_dir=
trap '[ -z "$etcd_build_dir" ] || rm -rf "$etcd_build_dir"' EXIT
etcd_built_json=
etcd_built_report=
for line in $ETCD_BUILT_LINES; do
  module_dir="$repo_root/scripts/etcd/v$line"
  version=$(sed -n 's/^[[:space:]]*go\.etcd\.io\/etcd\/server\/v3 v\([0-9.]*\)$/\1/p' "$module_dir/go.mod")
  [ -n "$version" ] || fail "$module_dir/go.mod pins no go.etcd.io/etcd/server/v3 version."
  bin_dir="$cache_dir/etcd-v$version"
  source_hash=$(cd "$module_dir" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) |
    LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$bin_dir/source.sha256" 2>/dev/null)" != "$source_hash" ]; then
    find_go
    [ -n "$go" ] || fail "building etcd $version needs Go >= 1.26, but 'go' is neither on PATH nor at /usr/local/go/bin/go: install Go and run again."
    say "building etcd $version (etcd, etcdctl, etcdutl) with $("$go" version) (a minute or two, once)..."
    mkdir -p "$cache_dir"
    etcd_build_dir=$(mktemp -d "$cache_dir/.etcd-v$version.build.XXXXXX")
    started=$(date +%s)
    (cd "$module_dir" && CGO_ENABLED=0 GOWORK=off "$go" build -mod=readonly -trimpath -buildvcs=false \
      -o "$etcd_build_dir/" ./cmd/etcd ./cmd/etcdctl ./cmd/etcdutl) ||
      fail "building etcd $version from $module_dir failed (see above)."
    echo "$source_hash" >"$etcd_build_dir/source.sha256"
    chmod 755 "$etcd_build_dir"
    rm -rf "$bin_dir" # a stale build of other sources
    # rename: an interrupted build never leaves half a binary; a parallel run may have won the race
    mv -T "$etcd_build_dir" "$bin_dir" 2>/dev/null || [ -f "$bin_dir/source.sha256" ] ||
      fail "could not move the etcd $version build into $bin_dir."
    rm -rf "$etcd_build_dir"
    etcd_build_dir=
    say "built etcd $version in $(($(date +%s) - started)) s"
  fi
  etcd_v=$("$bin_dir/etcd" --version | sed -n 's/^etcd Version: //p')
  etcdctl_v=$("$bin_dir/etcdctl" version | sed -n 's/^etcdctl version: //p')
  etcdutl_v=$("$bin_dir/etcdutl" version | sed -n 's/^etcdutl version: //p')
  [ "$etcd_v $etcdctl_v $etcdutl_v" = "$version $version $version" ] ||
    fail "$bin_dir holds etcd '$etcd_v', etcdctl '$etcdctl_v', etcdutl '$etcdutl_v', not $version: delete that directory and run again."
  etcd_built_report+="etcd     $bin_dir/etcd ($etcd_v)"$'\n'
  etcd_built_report+="etcdctl  $bin_dir/etcdctl ($etcdctl_v)"$'\n'
  etcd_built_report+="etcdutl  $bin_dir/etcdutl ($etcdutl_v)"$'\n'
  etcd_built_json+=",
    \"$line\": { \"version\": \"$version\", \"etcd\": \"$bin_dir/etcd\", \"etcdctl\": \"$bin_dir/etcdctl\", \"etcdutl\": \"$bin_dir/etcdutl\" }"
done

etcd_version=$(etcd --version | sed -n 's/^etcd Version: //p')
etcdctl_version=$(etcdctl version | sed -n 's/^etcdctl version: //p')
bwrap_version=$(bwrap --version | awk '{print $2}')
# Debian's etcd has no etcdutl; its line (3.4 on Debian 12) is left out if we build that line too.
debian_line=$(echo "$etcd_version" | cut -d. -f1,2)
case " $ETCD_BUILT_LINES " in
*" $debian_line "*) etcd_built_json=${etcd_built_json#,} ;;
*) etcd_built_json="
    \"$debian_line\": { \"version\": \"$etcd_version\", \"etcd\": \"$(command -v etcd)\", \"etcdctl\": \"$(command -v etcdctl)\" }$etcd_built_json" ;;
esac

say "node     $(node --version)"
say "temporal $temporal ($temporal_version; built from $TEMPORAL_CLI_VERSION unless it came from PATH/TEMPORAL_CLI_PATH)"
say "etcd     $(command -v etcd) ($etcd_version)"
say "etcdctl  $(command -v etcdctl) ($etcdctl_version)"
while IFS= read -r report_line; do say "$report_line"; done <<<"${etcd_built_report%$'\n'}"
say "bwrap    $(command -v bwrap) ($bwrap_version)"
say "busybox  $(command -v busybox) ($(busybox 2>&1 | head -n 1 | awk '{print $2}'))"
say "openssl  $(command -v openssl) ($(openssl version | awk '{print $2}'))"
say "sshd     $sshd_path ($("$sshd_path" -V 2>&1 | head -n 1 || true))"
say "sudo     $(command -v sudo) ($(sudo -V | head -n 1 | awk '{print $3}'))"
chromium_version=$(chromium --version 2>/dev/null | awk '{print $2}')
say "chromium $(command -v chromium) ($chromium_version)"

cat >"$repo_root/.tools.json.tmp" <<EOF
{
  "temporal": "$temporal",
  "temporalVersion": "$temporal_version",
  "etcd": "$(command -v etcd)",
  "etcdVersion": "$etcd_version",
  "etcdctl": "$(command -v etcdctl)",
  "etcdctlVersion": "$etcdctl_version",
  "bwrap": "$(command -v bwrap)",
  "bwrapVersion": "$bwrap_version",
  "sshd": "$sshd_path",
  "sudo": "$(command -v sudo)",
  "chromium": "$(command -v chromium)",
  "chromiumVersion": "$chromium_version",
  "etcdReleases": {$etcd_built_json
  }
}
EOF
mv "$repo_root/.tools.json.tmp" "$repo_root/.tools.json"
