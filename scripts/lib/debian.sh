# shellcheck shell=bash
# The one way the suite's scripts (test.sh, demo.sh, check-deploy.sh, alerting-check.sh,
# check-package.sh) get the Debian packages they need. Sourced, not run.
#
#   need=$(missing_debian_packages cmd:pkg ...)   # the packages whose command is missing
#   install_debian_packages WHO LOG pkg ...        # installs them (root only)
#
# Packages such as prometheus, prometheus-alertmanager and mosquitto start a system service when
# installed; the suite runs its own servers, so service starts are forbidden while installing
# (/usr/sbin/policy-rc.d answering 101, "action forbidden"). A policy-rc.d already there is left
# as it is; one created here is removed afterwards, whether the installation worked or not.

# Prints, one per line and each once, the package of every `command:package` pair whose command
# is not on PATH.
missing_debian_packages() {
  local pair
  for pair in "$@"; do
    command -v "${pair%%:*}" > /dev/null || printf '%s\n' "${pair#*:}"
  done | sort -u
}

# Installs the packages with apt-get, output to LOG. WHO names the caller in messages. Not root:
# says what is missing and exits 1. apt-get failing: prints LOG's last 20 lines and exits 1.
install_debian_packages() {
  local who=$1 log=$2 created=0 rc=0
  shift 2
  [ "$#" -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ]; then
    echo "$who: missing Debian packages $*; run as root or install them first" >&2
    exit 1
  fi
  echo "$who: installing Debian packages: $*"
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created=1
  fi
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "$@"; } > "$log" 2>&1 || rc=$?
  if [ "$created" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ "$rc" != 0 ]; then
    tail -n 20 "$log" >&2
    echo "$who: apt-get install failed (log: $log)" >&2
    exit 1
  fi
}
