#!/bin/sh
# Install what the real-PBX tests need and provision the cached Asterisk 22 chroot.
# Idempotent: installs only missing packages; `hotline pbx provision` reuses the chroot
# (~/.cache/hotline/asterisk-sid-root unless HOTLINE_PBX__CHROOT_DIR says otherwise) and
# regenerates only prompts whose text changed. Needs root (apt-get, chroot, mount).
set -eu

cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "install-pbx.sh: needs root (apt-get, chroot, mount); run it with sudo" >&2
    exit 1
fi

# package -> a command it provides
missing=""
for pair in mmdebstrap:mmdebstrap sip-tester:sipp espeak-ng:espeak-ng sox:sox; do
    pkg=${pair%%:*}
    cmd=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "install-pbx.sh: installing$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi

if [ -x .venv/bin/hotline ]; then
    hotline=.venv/bin/hotline
else
    hotline="uv run hotline"
fi
$hotline pbx provision
