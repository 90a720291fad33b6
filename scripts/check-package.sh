#!/usr/bin/env bash
# Checks the Debian package `qgw` (cargo-deb, gateway/Cargo.toml [package.metadata.deb]): builds it
# from the release binaries, inspects it with dpkg-deb, then installs it into a clean Debian 12
# root (debootstrap minbase, cached under target/check-package/) with apt, exactly as an admin
# would, and checks the installed system: both binaries run, man pages and completions are where
# Debian looks for them, `systemd-analyze verify` accepts the installed units and nothing enabled
# them, `qgw check-config` accepts every installed example config (run as user qgw, with keys and
# a demo PKI generated in the root), the postinst made a system user with nologin; a reinstall and
# an upgrade keep the user and an admin's /etc/qgw; `dpkg -r` removes the files, `dpkg -P` the
# user and the empty /etc/qgw, and nothing of the package is left behind.
#
#   sudo ./scripts/check-package.sh        # CI runs it as root, after the demo's release build
#
# One PASS/FAIL line per check (the tool's output under a failure), timings at the end, exit 1 if
# any check failed. Needs root (chroot, mount). Installs what it lacks: debootstrap (Debian) and
# cargo-deb $CARGO_DEB_VERSION (`cargo install --locked`). The first run bootstraps the root from
# $QGW_DEBIAN_MIRROR (deb.debian.org) and caches it as a tarball; later runs unpack the cache. The
# root shares the host's network for apt only; the one daemon started (qkd-kme-sim, to load the
# example kme-sim.yaml) runs in a network namespace of its own and is stopped by its PID.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
CARGO_DEB_VERSION=3.8.0
MIRROR=${QGW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${QGW_CHECK_PACKAGE_CACHE:-$REPO/target/check-package}
ROOT_TAR=$CACHE/bookworm-minbase-systemd.tar.gz
WORK=$(mktemp -d /tmp/qgw-check-package.XXXXXX)
ROOT=$WORK/root
FAILED=0
PASSED=0
T0=$(date +%s)
declare -A TIMES=()

cleanup() {
    if [ -n "${KME_PID:-}" ] && kill -0 "$KME_PID" 2>/dev/null; then
        kill "$KME_PID" || true
    fi
    # Every mount under the scratch root, deepest first: ours (proc) and any debootstrap left
    # behind when interrupted (proc, sys). Then remove the root without crossing a mount.
    awk -v root="$ROOT/" 'index($2, root) == 1 {print $2}' /proc/self/mounts | sort -r \
        | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pass() { PASSED=$((PASSED + 1)); printf 'PASS  %s\n' "$1"; }
fail() {
    FAILED=$((FAILED + 1))
    printf 'FAIL  %s\n' "$1"
    if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/      /'; fi
}
# Runs "$@"; PASS if it exits 0.
check() {
    local name=$1 out rc=0
    shift
    out=$("$@" 2>&1) || rc=$?
    if [ "$rc" -eq 0 ]; then pass "$name"; else fail "$name" "$out"; fi
}
# PASS if "$2" equals "$3".
expect() {
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected: $3"$'\n'"got:      $2"; fi
}
# A command inside the root, as root (or as --userspec=U:G given first), with a clean environment.
in_root() {
    local spec=()
    if [[ "${1:-}" == --userspec=* ]]; then spec=("$1"); shift; fi
    chroot "${spec[@]}" "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"
}
dpkg_status() { in_root dpkg-query -W -f="\${db:Status-Abbrev}" "$1"; }
timed() { TIMES[$1]=$(($(date +%s) - $2)); }
die() { echo "check-package: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount); run it with sudo"

# --- Tools -----------------------------------------------------------------------------------

# debootstrap for the root; dpkg-shlibdeps (dpkg-dev) for cargo-deb's `$auto` Depends (without
# it cargo-deb only warns and the package would not depend on libc6); objcopy (binutils) for
# the dbgsym package. None of them has a service.
# shellcheck source=scripts/lib/debian.sh
. "$REPO/scripts/lib/debian.sh"
mapfile -t need < <(missing_debian_packages debootstrap:debootstrap dpkg-shlibdeps:dpkg-dev \
    objcopy:binutils)
install_debian_packages check-package "${TMPDIR:-/tmp}/qgw-check-package-apt.log" "${need[@]}"
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    echo "check-package: cargo install --locked cargo-deb --version $CARGO_DEB_VERSION"
    t=$(date +%s)
    cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
    timed "cargo install cargo-deb" "$t"
fi
for tool in debootstrap dpkg-deb chroot mount unshare systemd-analyze systemctl; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

check "shellcheck scripts/check-package.sh gateway/debian/*" \
    shellcheck -x scripts/check-package.sh gateway/debian/postinst gateway/debian/prerm gateway/debian/postrm

# --- Build -----------------------------------------------------------------------------------

t=$(date +%s)
cargo build --release --locked -q -p gateway --bin qgw
cargo build --release --locked -q -p qkd-link --features sim --bin qkd-kme-sim
timed "cargo build --release (both binaries)" "$t"
t=$(date +%s)
DEB=$(cargo deb -p gateway --no-build 2>"$WORK/cargo-deb.log" | grep '\.deb$') \
    || die "cargo deb failed: $(cat "$WORK/cargo-deb.log")"
timed "cargo deb" "$t"
# Its warnings, but for the expected one about the man pages' path (docs/dependencies.md).
grep -i warning "$WORK/cargo-deb.log" | grep -v 'qgw-assets/man' | sed 's/^/check-package: cargo deb: /' || true
VERSION=$(dpkg-deb --field "$DEB" Version)
echo "check-package: $DEB ($(stat -c %s "$DEB") bytes, version $VERSION)"

# --- The .deb itself -------------------------------------------------------------------------

expect "dpkg-deb --field Package" "$(dpkg-deb --field "$DEB" Package)" qgw
DEPENDS=$(dpkg-deb --field "$DEB" Depends)
for dep in libc6 adduser iproute2; do
    if grep -qE "(^|, )$dep( |,|$)" <<<"$DEPENDS"; then pass "Depends names $dep"; else fail "Depends names $dep" "$DEPENDS"; fi
done
dpkg-deb --contents "$DEB" | awk '{print $NF}' | sed 's#^\./#/#' >"$WORK/contents"
missing=""
for path in /usr/bin/qgw /usr/bin/qkd-kme-sim /lib/systemd/system/qgw@.service \
    /lib/systemd/system/qkd-kme-sim.service /usr/share/man/man1/qgw.1.gz \
    /usr/share/man/man1/qgw-check-config.1.gz /usr/share/man/man1/qgw-up.1.gz \
    /usr/share/bash-completion/completions/qgw /usr/share/zsh/vendor-completions/_qgw \
    /usr/share/fish/vendor_completions.d/qgw.fish /usr/share/doc/qgw/copyright \
    /usr/share/doc/qgw/README.md /usr/share/doc/qgw/operations.md \
    /usr/share/doc/qgw/examples/site-a.yaml /usr/share/doc/qgw/examples/site-a-hybrid.yaml \
    /usr/share/doc/qgw/examples/kme-sim.yaml /usr/share/doc/qgw/examples/prometheus/qgw-alerts.yml \
    /usr/share/doc/qgw/examples/alertmanager/alertmanager.yml \
    /usr/share/doc/qgw/examples/keepalived/keepalived.conf /usr/share/doc/qgw/examples/keepalived/qgw-ha; do
    grep -qxF "$path" "$WORK/contents" || missing+="$path "
done
expect "dpkg-deb --contents: binaries, units, man pages, completions, docs, examples" "$missing" ""
expect "nothing under /etc in the package (examples are not conffiles, nothing auto-enabled)" \
    "$(grep '^/etc' "$WORK/contents" || true)" ""
dpkg-deb --ctrl-tarfile "$DEB" | tar -t | sed 's#^\./##' | grep -v '^$' | sort | tr '\n' ' ' >"$WORK/control-files"
# cargo-deb writes no md5sums (docs/dependencies.md): `dpkg --verify qgw` has nothing to compare.
expect "dpkg-deb --ctrl-tarfile: control and the three maintainer scripts" \
    "$(cat "$WORK/control-files")" "control postinst postrm prerm "
dpkg-deb -x "$DEB" "$WORK/extracted"
for unit in qgw@.service qkd-kme-sim.service; do
    check "the packaged $unit is systemd/$unit byte for byte" cmp "$WORK/extracted/lib/systemd/system/$unit" "systemd/$unit"
done
expect "ExecStart/ExecStartPre of the packaged units name /usr/bin only" \
    "$(grep -hE '^ExecStart' "$WORK"/extracted/lib/systemd/system/*.service | grep -v '/usr/bin/' || true)" ""

# --- A clean Debian 12 root ------------------------------------------------------------------

t=$(date +%s)
if [ ! -s "$ROOT_TAR" ]; then
    echo "check-package: debootstrap --variant=minbase --include=systemd bookworm from $MIRROR (cached as $ROOT_TAR)"
    debootstrap --variant=minbase --include=systemd bookworm "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || die "debootstrap failed: $(tail -20 "$WORK/debootstrap.log")"
    timed "debootstrap (uncached)" "$t"
    mkdir -p "$CACHE"
    tar -C "$ROOT" --numeric-owner -czf "$ROOT_TAR.tmp" . && mv "$ROOT_TAR.tmp" "$ROOT_TAR"
else
    mkdir -p "$ROOT"
    tar -C "$ROOT" --numeric-owner -xzf "$ROOT_TAR"
    timed "clean root from the cache" "$t"
fi
mount -t proc proc "$ROOT/proc"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# Like the suite's hosts: maintainer scripts may not start services in this root.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
in_root apt-get update -qq >/dev/null 2>&1 || true   # a cached root's lists may be stale

# What the root holds before the package (apt's and dpkg's own state excluded), for the purge.
snapshot() {
    find "$ROOT" -xdev \( -path "$ROOT/proc" -o -path "$ROOT/dev" -o -path "$ROOT/run" -o -path "$ROOT/tmp" \
        -o -path "$ROOT/var/lib/dpkg" -o -path "$ROOT/var/lib/apt" -o -path "$ROOT/var/cache" \
        -o -path "$ROOT/var/log" \) -prune -o -print | sed "s#^$ROOT##" | sort
}
snapshot >"$WORK/before"

# --- Install with apt (Depends pulled from the mirror) ---------------------------------------

cp "$DEB" "$ROOT/tmp/"
DEB_IN_ROOT=/tmp/$(basename "$DEB")
t=$(date +%s)
check "apt-get install $DEB_IN_ROOT in the clean root" in_root apt-get install -y -q "$DEB_IN_ROOT"
timed "apt-get install (with its dependencies)" "$t"
for dep in adduser iproute2; do
    expect "apt installed the dependency $dep" "$(dpkg_status "$dep" 2>&1)" "ii "
done

expect "qgw --version" "$(in_root qgw --version 2>&1 | head -1 | cut -d' ' -f1-2)" "qgw ${VERSION%-*}"
check "qgw --help lists check-config" sh -c "chroot '$ROOT' /usr/bin/qgw --help | grep -q check-config"
check "qkd-kme-sim --version" in_root qkd-kme-sim --version
for page in qgw qgw-up qgw-check-config qgw-genkey qgw-pubkey qgw-status qgw-audit-verify; do
    check "man page /usr/share/man/man1/$page.1.gz is a gzipped roff page" \
        sh -c "gzip -dc '$ROOT/usr/share/man/man1/$page.1.gz' | grep -q '^\.TH'"
done
check "bash completion parses (bash -n) and defines a completion for qgw" \
    sh -c "chroot '$ROOT' bash -n /usr/share/bash-completion/completions/qgw && grep -q 'complete .* qgw' '$ROOT/usr/share/bash-completion/completions/qgw'"
check "zsh and fish completions installed" \
    test -s "$ROOT/usr/share/zsh/vendor-completions/_qgw" -a -s "$ROOT/usr/share/fish/vendor_completions.d/qgw.fish"

# The user the unit runs as: a system uid, no login shell, no home.
PW=$(in_root getent passwd qgw || true)
IFS=: read -r _ _ QGW_UID _ _ QGW_HOME QGW_SHELL <<<"$PW"
if [ -n "$PW" ] && [ "$QGW_UID" -lt 1000 ] && [ "$QGW_SHELL" = /usr/sbin/nologin ] && [ "$QGW_HOME" = /nonexistent ]; then
    pass "getent passwd qgw: system user, nologin, home /nonexistent ($PW)"
else
    fail "getent passwd qgw: system user, nologin, home /nonexistent" "${PW:-no such user}"
fi
check "getent group qgw" in_root getent group qgw
expect "/etc/qgw and /etc/qgw/qkd created 0755 root:root" \
    "$(stat -c '%a %U:%G' "$ROOT/etc/qgw" "$ROOT/etc/qgw/qkd" | tr '\n' ' ')" "755 root:root 755 root:root "

# Installed units: verified against this root; not enabled, not started.
check "systemd-analyze verify --root (installed qgw@site-a.service, qkd-kme-sim.service)" \
    systemd-analyze verify --root="$ROOT" qgw@site-a.service qkd-kme-sim.service
doc_missing=""
doc_count=0
while read -r f; do
    doc_count=$((doc_count + 1))
    [ -s "$ROOT$f" ] || doc_missing+="$f "
done < <(sed -n 's#^Documentation=.*file://\([^ ]*\).*#\1#p' "$ROOT"/lib/systemd/system/qgw@.service \
    "$ROOT"/lib/systemd/system/qkd-kme-sim.service)
expect "the units' Documentation= files ($doc_count) are installed" "$doc_missing" ""
for unit in qgw@.service qkd-kme-sim.service; do
    expect "systemctl is-enabled $unit: disabled" "$(systemctl --root="$ROOT" is-enabled "$unit" 2>&1 || true)" disabled
done
expect "no qgw or qkd-kme-sim symlink under /etc/systemd/system" \
    "$(find "$ROOT/etc/systemd/system" -name 'qgw*' -o -name 'qkd-kme-sim*' | sed "s#^$ROOT##")" ""

# --- Every installed example config, with keys where the examples expect them ----------------

# As an admin following docs/operations.md#generate-keys: 0600 keys owned by qgw, public keys and
# the demo PKI's certificates world-readable.
# shellcheck disable=SC2016 # $s expands in the root's shell
in_root sh -euc '
    cd /etc/qgw && umask 077
    for s in a b; do
        qgw genkey > site-$s.key
        qgw genkey --mldsa > site-$s.mldsa
        qgw pubkey --mldsa < site-$s.mldsa > site-$s.mldsa.pub && chmod 0644 site-$s.mldsa.pub
    done
    qgw genkey > ab.psk
    qkd-kme-sim pki --out /etc/qgw/qkd --force >/dev/null
    chmod 0644 qkd/*.pem
    chown qgw:qgw site-a.key site-b.key site-a.mldsa site-b.mldsa ab.psk qkd/sae_a.key qkd/sae_b.key
' >"$WORK/keys.log" 2>&1 || fail "generate keys and a demo PKI in /etc/qgw with qgw genkey, qkd-kme-sim pki" "$(cat "$WORK/keys.log")"
for example in site-a site-b site-a-hybrid site-b-hybrid; do
    check "qgw check-config /usr/share/doc/qgw/examples/$example.yaml (as user qgw)" \
        in_root --userspec=qgw:qgw qgw check-config "/usr/share/doc/qgw/examples/$example.yaml"
done
# kme-sim.yaml has no check command: the simulator loads it (and the PKI) and serves it, in a
# network namespace of its own (its ports are loopback ones), until it prints "ready".
unshare --net chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin qkd-kme-sim serve \
    --config /usr/share/doc/qgw/examples/kme-sim.yaml --pki /etc/qgw/qkd >"$WORK/kme.log" 2>&1 &
KME_PID=$!
for _ in $(seq 50); do
    grep -q ready "$WORK/kme.log" && break
    kill -0 "$KME_PID" 2>/dev/null || break
    sleep 0.2
done
if grep -q ready "$WORK/kme.log"; then
    pass "qkd-kme-sim serve --config /usr/share/doc/qgw/examples/kme-sim.yaml: ready"
else
    fail "qkd-kme-sim serve --config /usr/share/doc/qgw/examples/kme-sim.yaml: ready" "$(cat "$WORK/kme.log")"
fi
kill "$KME_PID" 2>/dev/null || true
wait "$KME_PID" 2>/dev/null || true
KME_PID=

# --- Reinstall and upgrade: idempotent, an admin's /etc/qgw untouched ------------------------

check "dpkg -i the same package again (postinst configure a second time)" in_root dpkg -i "$DEB_IN_ROOT"
expect "qgw keeps its uid after the reinstall" "$(in_root id -u qgw 2>&1)" "$QGW_UID"
# Version+1 of the same contents (dpkg-deb -R, new Version, dpkg-deb -b): prerm upgrade,
# postinst configure <old>. The admin has tightened /etc/qgw to 0750 root:qgw meanwhile.
dpkg-deb -R "$DEB" "$WORK/next"
NEXT_VERSION="${VERSION%-*}-$((${VERSION##*-} + 1))"
sed -i "s/^Version: .*/Version: $NEXT_VERSION/" "$WORK/next/DEBIAN/control"
dpkg-deb -b --root-owner-group "$WORK/next" "$ROOT/tmp/qgw-next.deb" >/dev/null
in_root sh -c 'chgrp qgw /etc/qgw && chmod 0750 /etc/qgw'
check "upgrade $VERSION -> $NEXT_VERSION with dpkg -i" in_root dpkg -i /tmp/qgw-next.deb
expect "upgrade: installed version" "$(in_root dpkg-query -W -f="\${Version}" qgw 2>&1)" "$NEXT_VERSION"
expect "upgrade: uid, the admin's /etc/qgw mode and the keys kept" \
    "$(in_root sh -c 'id -u qgw; stat -c "%a %U:%G" /etc/qgw; stat -c "%a %U" /etc/qgw/site-a.key' 2>&1 | tr '\n' ' ')" \
    "$QGW_UID 750 root:qgw 600 qgw "
in_root sh -c 'chgrp root /etc/qgw && chmod 0755 /etc/qgw'

# --- Remove, then purge ----------------------------------------------------------------------

check "dpkg -r qgw" in_root dpkg -r qgw
left=""
while read -r path; do
    if [ -f "$ROOT$path" ] || [ -L "$ROOT$path" ]; then left+="$path "; fi
done <"$WORK/contents"
expect "dpkg -r: no file of the package left" "$left" ""
expect "dpkg -r: user qgw, /etc/qgw and its keys kept for a reinstall" \
    "$(in_root sh -c 'getent passwd qgw >/dev/null && test -s /etc/qgw/site-a.key && echo kept' 2>&1)" kept
# The admin deletes the site's keys and configs before purging (purge never deletes them).
rm -rf "${ROOT:?}"/etc/qgw/*
check "dpkg -P qgw" in_root dpkg -P qgw
expect "dpkg -P: user and group qgw removed" "$(in_root sh -c 'getent passwd qgw; getent group qgw' 2>&1)" ""
expect "dpkg -P: /etc/qgw removed" "$(if [ -e "$ROOT/etc/qgw" ]; then echo present; fi)" ""
expect "dpkg -P: package unknown to dpkg" "$(dpkg_status qgw 2>/dev/null || true)" ""
# Left behind: every path that is new since before the install and belongs to no installed
# package (the dependencies stay; backups of the account files are adduser's, not ours).
snapshot >"$WORK/after"
# dpkg lists /bin, /sbin and /lib paths as packaged; in the merged-/usr root they live under /usr.
cat "$ROOT"/var/lib/dpkg/info/*.list | sed -E 'p; s#^/(bin|sbin|lib[^/]*)(/|$)#/usr/\1\2#' | sort -u >"$WORK/owned"
new=$(comm -13 "$WORK/before" "$WORK/after" | comm -23 - "$WORK/owned" \
    | grep -vxE '/etc/(passwd|group|shadow|gshadow)-' || true)
expect "dpkg -P: nothing left behind in the root" "$new" ""

# ---------------------------------------------------------------------------------------------
TIMES["total"]=$(($(date +%s) - T0))
echo "check-package: timings (s):"
for k in "${!TIMES[@]}"; do printf '  %-45s %s\n' "$k" "${TIMES[$k]}"; done | sort
echo "check-package: $(basename "$DEB") $(stat -c %s "$DEB") bytes"
if [ "$FAILED" -ne 0 ]; then
    echo "check-package: $PASSED passed, $FAILED failed"
    exit 1
fi
echo "check-package: all $PASSED checks passed"
