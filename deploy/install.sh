#!/bin/sh
# Install or upgrade Checkpoint Edge on a Debian box (run as root), or into a scratch root.
#
#   sudo deploy/install.sh                          # from a clone: builds and installs from source (PyPI for deps)
#   sudo deploy/install.sh --wheel-dir /media/usb   # offline: every wheel, ours included, in one folder
#   sudo deploy/install.sh --hub                    # also the hub unit and /etc/checkpoint-hub/hub.yaml
#   sudo deploy/install.sh --rollback               # back to the previous release (see docs/technician-guide.md)
#   deploy/install.sh --root /tmp/scratch           # everything under /tmp/scratch, no users, no systemctl
#
# Layout (under --root, default /):
#   opt/checkpoint-edge/releases/<time>/            one venv per install (VERSION inside); the newest 3 kept
#   opt/checkpoint-edge/current, previous           symlinks to releases (switched only when all went well)
#   etc/checkpoint/edge.yaml                        the config: written once from the example, never overwritten
#   etc/checkpoint/secrets/                         secrets (root, 0700), loaded by systemd as credentials
#   var/lib/checkpoint/                             database, evidence; backups/ before every upgrade
#   etc/systemd/system/checkpoint-edge.service (+ checkpoint-hub.service with --hub)
#
# Idempotent: running it again with the same software installs a fresh release and switches to it;
# config, secrets and data are never replaced. An upgrade stops the edge, backs the database up with
# the store's own backup (`checkpoint store backup`: a consistent SQLite snapshot, quick_check'ed),
# migrates it with the NEW software (which backs up beside it again), and only then switches
# `current`; any failure before the switch leaves the old release running as it was.
set -eu

ROOT=/
WHEEL_DIR=
DEPS_FROM=
PYTHON=${PYTHON:-python3}
HUB=0
ROLLBACK=0
KEEP=3
SRC=$(cd "$(dirname "$0")/.." && pwd)

usage() {
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
    cat <<EOF

Options:
  --root DIR        install under DIR instead of / (no users, no systemctl; paths in units and config point into DIR)
  --wheel-dir DIR   install offline from the wheels in DIR (pip --no-index --find-links DIR);
                    make DIR on a connected machine: pip wheel --wheel-dir DIR /path/to/checkpoint-edge
  --deps-from DIR   use the dependencies already installed in site-packages folder DIR (no download at all;
                    for air-gapped boxes prepared with the same Python); only checkpoint-edge itself is installed
  --python PY       Python 3.11+ interpreter to build the venv with (default: python3)
  --hub             also install the hub unit (checkpoint-hub.service) and /etc/checkpoint-hub/hub.yaml
  --rollback        switch back to the previous release (restores the pre-upgrade database backup if the
                    upgrade migrated it; the newer database is kept beside it, never deleted)
  -h, --help        this text
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=$2; shift 2 ;;
        --wheel-dir) WHEEL_DIR=$2; shift 2 ;;
        --deps-from) DEPS_FROM=$2; shift 2 ;;
        --python) PYTHON=$2; shift 2 ;;
        --hub) HUB=1; shift ;;
        --rollback) ROLLBACK=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '%s\n' "install.sh: $*"; }
die() { printf '%s\n' "install.sh: error: $*" >&2; exit 1; }

mkdir -p "$ROOT" || die "cannot create $ROOT"
ROOT=$(cd "$ROOT" && pwd)
R=${ROOT%/}                                   # "" for a real install, "/tmp/scratch" for a scratch root
SYSTEM=0
if [ -z "$R" ]; then
    [ "$(id -u)" -eq 0 ] || die "run as root (sudo), or use --root DIR to try it out"
    SYSTEM=1
fi
OPT=$R/opt/checkpoint-edge
ETC=$R/etc/checkpoint
VAR=$R/var/lib/checkpoint
UNITS=$R/etc/systemd/system
CONFIG=$ETC/edge.yaml

as_edge() {  # run a command as the edge's user on a real install (files it creates keep that owner)
    if [ "$SYSTEM" -eq 1 ]; then runuser -u checkpoint -- "$@"; else "$@"; fi
}

service_active() {
    [ "$SYSTEM" -eq 1 ] && command -v systemctl >/dev/null && systemctl is-active --quiet "$1"
}

db_path() {  # the database the config names (falls back to the default place)
    CREDENTIALS_DIRECTORY=$ETC/secrets "$1/bin/python" - "$CONFIG" "$VAR/edge.db" <<'EOF' 2>/dev/null \
        || echo "$VAR/edge.db"
import sys
from edge.config import load_config
try:
    print(load_config(sys.argv[1]).store.path)
except Exception:
    print(sys.argv[2])
EOF
}

# ------------------------------------------------------------------ rollback
if [ "$ROLLBACK" -eq 1 ]; then
    [ -L "$OPT/previous" ] || die "no previous release to go back to ($OPT/previous)"
    prev=$(readlink -f "$OPT/previous"); cur=$(readlink -f "$OPT/current")
    was_active=0
    if service_active checkpoint-edge; then was_active=1; systemctl stop checkpoint-edge; fi
    db=$(db_path "$prev")
    if [ -f "$cur/.upgrade-backup" ] && [ -f "$db" ]; then
        backup=$(cat "$cur/.upgrade-backup")
        have=$("$prev/bin/checkpoint" store schema --db "$db" | "$prev/bin/python" -c 'import json,sys; d=json.load(sys.stdin); print(int(d["version"] > d["supported"]))')
        if [ "$have" = 1 ]; then
            aside="$db.rolled-back-$(date -u +%Y%m%dT%H%M%SZ)"
            say "the database was migrated by the newer release: keeping it as $aside, restoring $backup"
            mv "$db" "$aside"
            for f in "$db-wal" "$db-shm"; do [ ! -e "$f" ] || mv "$f" "$aside${f#"$db"}"; done
            cp -p "$backup" "$db"
            say "events recorded since the upgrade and not yet at the hub are in $aside (never deleted)"
        fi
    fi
    ln -sfn "$prev" "$OPT/current.new" && mv -T "$OPT/current.new" "$OPT/current"
    ln -sfn "$cur" "$OPT/previous.new" && mv -T "$OPT/previous.new" "$OPT/previous"
    say "current -> $prev (previous -> $cur)"
    if [ "$was_active" -eq 1 ]; then systemctl start checkpoint-edge; say "checkpoint-edge restarted"; fi
    exit 0
fi

# ------------------------------------------------------------------ checks
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "$PYTHON is not Python 3.11 or newer (apt install python3 python3-venv, or --python PATH)"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "$PYTHON has no venv/ensurepip: apt install python3-venv"
[ -z "$WHEEL_DIR" ] || [ -d "$WHEEL_DIR" ] || die "--wheel-dir $WHEEL_DIR is not a folder"
[ -z "$DEPS_FROM" ] || [ -d "$DEPS_FROM" ] || die "--deps-from $DEPS_FROM is not a folder"
if [ -z "$WHEEL_DIR" ]; then
    [ -f "$SRC/pyproject.toml" ] || die "no --wheel-dir and no source tree at $SRC"
fi

# ------------------------------------------------------------------ users (real installs only)
if [ "$SYSTEM" -eq 1 ]; then
    users=checkpoint
    [ "$HUB" -eq 0 ] || users="checkpoint checkpoint-hub"
    for user in $users; do
        if ! getent passwd "$user" >/dev/null; then
            useradd --system --user-group --home-dir "/var/lib/$user" --no-create-home --shell /usr/sbin/nologin "$user"
            say "created system user $user"
        fi
    done
    # Serial adapters and cameras, also for `sudo -u checkpoint checkpoint doctor`.
    for group in dialout video; do
        ! getent group "$group" >/dev/null || usermod -aG "$group" checkpoint
    done
fi

# ------------------------------------------------------------------ the release
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
REL="$OPT/releases/$STAMP"
mkdir -p "$OPT/releases"
[ ! -e "$REL" ] || die "$REL exists already (two installs in the same second?)"
trap 'rm -rf "$REL"' EXIT   # until `current` points at it, a failed install leaves nothing behind
say "creating a venv in $REL"
"$PYTHON" -m venv "$REL"
PIP="$REL/bin/python -m pip --disable-pip-version-check --no-input -q"
NODEPS=
if [ -n "$DEPS_FROM" ]; then
    # The dependencies come from an existing site-packages: a .pth file puts that folder on the path.
    site=$("$REL/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    printf '%s\n' "$(cd "$DEPS_FROM" && pwd)" > "$site/zz_checkpoint_deps.pth"
    NODEPS="--no-deps --ignore-installed"  # checkpoint-edge itself may be in DIR too: install ours anyway
fi
if [ -n "$WHEEL_DIR" ]; then
    say "installing from $WHEEL_DIR (offline)"
    # shellcheck disable=SC2086
    $PIP install $NODEPS --no-index --find-links "$WHEEL_DIR" checkpoint-edge
else
    say "installing from the source tree $SRC"
    # shellcheck disable=SC2086
    $PIP install $NODEPS "$SRC"
fi
VERSION=$("$REL/bin/checkpoint" --version | awk '{print $NF}')
[ -n "$VERSION" ] || die "the installed checkpoint does not run"
"$REL/bin/python" -c 'import cv2, onnxruntime, paho.mqtt, serial, sqlite_utils' \
    || die "dependencies are missing in the new venv"
printf '%s\n' "$VERSION" > "$REL/VERSION"
mkdir -p "$REL/share/checkpoint/deploy"
for f in "$SRC"/deploy/*.service "$SRC"/deploy/*.example.yaml "$SRC"/deploy/mosquitto.* "$SRC"/deploy/make-certs.sh; do
    [ ! -f "$f" ] || cp "$f" "$REL/share/checkpoint/deploy/"
done
[ ! -f "$SRC/docs/technician-guide.md" ] || cp "$SRC/docs/technician-guide.md" "$REL/share/checkpoint/"
say "checkpoint $VERSION installed in $REL"

# ------------------------------------------------------------------ config and data (never overwritten)
mkdir -p "$ETC/tls" "$ETC/secrets" "$VAR"
chmod 700 "$ETC/secrets"
rewrite() {  # the example's absolute paths, moved under the scratch root
    if [ -n "$R" ]; then sed -e "s|/var/lib/checkpoint|$VAR|g" -e "s|/etc/checkpoint|$ETC|g" -e "s|/srv/|$R/srv/|g"; else cat; fi
}
rewrite < "$SRC/deploy/edge.example.yaml" > "$ETC/edge.example.yaml"
if [ ! -f "$CONFIG" ]; then
    cp "$ETC/edge.example.yaml" "$CONFIG"
    say "wrote $CONFIG from the example: edit site, edge and lanes, then run checkpoint doctor"
fi
HUB_ETC=$R/etc/checkpoint-hub
if [ "$HUB" -eq 1 ]; then
    mkdir -p "$HUB_ETC/tls" "$HUB_ETC/secrets" "$R/var/lib/checkpoint-hub"
    chmod 700 "$HUB_ETC/secrets"
    rewrite < "$SRC/deploy/hub.example.yaml" > "$HUB_ETC/hub.example.yaml"
    if [ ! -f "$HUB_ETC/hub.yaml" ]; then
        cp "$HUB_ETC/hub.example.yaml" "$HUB_ETC/hub.yaml"
        say "wrote $HUB_ETC/hub.yaml from the example: set the broker, storage and certificates"
    fi
    if [ "$SYSTEM" -eq 1 ]; then
        chown root:checkpoint-hub "$HUB_ETC" "$HUB_ETC/tls" "$HUB_ETC/hub.yaml"
        chmod 750 "$HUB_ETC" "$HUB_ETC/tls"
        chmod 640 "$HUB_ETC/hub.yaml"
        chown checkpoint-hub:checkpoint-hub "$R/var/lib/checkpoint-hub"
    fi
fi
if [ "$SYSTEM" -eq 1 ]; then
    chown root:checkpoint "$ETC" "$ETC/tls" "$CONFIG" "$ETC/edge.example.yaml"
    chmod 750 "$ETC" "$ETC/tls"
    chmod 640 "$CONFIG" "$ETC/edge.example.yaml"
    chown checkpoint:checkpoint "$VAR"
    chmod 750 "$VAR"
fi

# ------------------------------------------------------------------ upgrade: back up, migrate, then switch
was_active=0
DB=$(db_path "$REL")
if [ -f "$DB" ]; then
    if service_active checkpoint-edge; then
        was_active=1
        say "stopping checkpoint-edge for the upgrade"
        systemctl stop checkpoint-edge
    fi
    BACKUPS=$(dirname "$DB")/backups
    as_edge mkdir -p "$BACKUPS"
    backup=$(as_edge "$REL/bin/checkpoint" store backup --db "$DB" --to "$BACKUPS") \
        || { [ "$was_active" -eq 0 ] || systemctl start checkpoint-edge; die "backup of $DB failed; nothing changed"; }
    printf '%s\n' "$backup" > "$REL/.upgrade-backup"
    say "database backed up to $backup"
    if ! result=$(as_edge "$REL/bin/checkpoint" store migrate --db "$DB"); then
        [ "$was_active" -eq 0 ] || systemctl start checkpoint-edge
        die "migrating $DB failed; it keeps its old schema and the old release stays current (backup: $backup)"
    fi
    say "database: $result"
fi

if [ -L "$OPT/current" ]; then
    ln -sfn "$(readlink -f "$OPT/current")" "$OPT/previous.new" && mv -T "$OPT/previous.new" "$OPT/previous"
fi
ln -sfn "$REL" "$OPT/current.new" && mv -T "$OPT/current.new" "$OPT/current"
trap - EXIT
say "current -> $REL"
mkdir -p "$R/usr/local/bin"
ln -sfn "$OPT/current/bin/checkpoint" "$R/usr/local/bin/checkpoint"   # `checkpoint` on the PATH
# Keep the newest releases (and whatever current/previous point at).
keep_cur=$(readlink -f "$OPT/current"); keep_prev=$(readlink -f "$OPT/previous" 2>/dev/null || true)
ls -1dt "$OPT"/releases/*/ 2>/dev/null | sed 's|/$||' | tail -n +$((KEEP + 1)) | while read -r old; do
    [ "$old" = "$keep_cur" ] || [ "$old" = "$keep_prev" ] || { rm -rf "$old"; say "removed old release $old"; }
done

# ------------------------------------------------------------------ systemd units
mkdir -p "$UNITS"
install_unit() {  # $1 unit, $2 secrets folder; paths moved under a scratch root; a drop-in loads every secret
    sed -e "s|/opt/checkpoint-edge|$OPT|g" -e "s|/etc/checkpoint|$ETC|g" -e "s|/var/lib/checkpoint|$VAR|g" \
        "$SRC/deploy/$1" > "$UNITS/$1.new"
    mv "$UNITS/$1.new" "$UNITS/$1"
    mkdir -p "$UNITS/$1.d"
    {
        echo "# Written by install.sh: one credential per file in $2 (re-run install.sh after adding one)."
        echo "[Service]"
        for s in "$2"/*; do
            [ -f "$s" ] || continue
            echo "LoadCredential=$(basename "$s"):$s"
        done
    } > "$UNITS/$1.d/credentials.conf"
}
install_unit checkpoint-edge.service "$ETC/secrets"
[ "$HUB" -eq 0 ] || install_unit checkpoint-hub.service "$HUB_ETC/secrets"
if [ "$SYSTEM" -eq 1 ] && command -v systemctl >/dev/null; then
    systemctl daemon-reload
    systemctl enable checkpoint-edge.service >/dev/null 2>&1 || true
    if [ "$was_active" -eq 1 ]; then
        systemctl start checkpoint-edge
        say "checkpoint-edge restarted on $VERSION"
    fi
fi

cat <<EOF
install.sh: done. Next:
  1. edit $CONFIG (site, edge id, lanes, devices); put certificates in $ETC/tls/, secrets in $ETC/secrets/
  2. $R/usr/local/bin/checkpoint doctor --config $CONFIG      (with the edge service stopped)
  3. systemctl start checkpoint-edge && journalctl -u checkpoint-edge -f
Rollback: $0 --rollback$( [ -z "$R" ] || echo " --root $ROOT" )
EOF
