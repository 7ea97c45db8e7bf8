#!/usr/bin/env bash
# Installs everything the test suite needs: the project with its test extras, and
# (when run as root on Debian) the interop peers: Samba's smbclient (with rpcclient) and smbtorture,
# tshark, tgt, libiscsi's test tools and qemu-utils.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(samba smbclient samba-testsuite libnss-wrapper tshark tgt libiscsi-bin qemu-utils qemu-block-extra iproute2)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
else
  echo "not root or no apt-get: make sure these are installed: ${DEBS[*]}" >&2
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
