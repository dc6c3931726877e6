#!/usr/bin/env bash
# The ARM64 lane: run the native-executor tests on arm64 genomes under qemu user mode.
#
#   scripts/arm64-qemu.sh            # prepare .qemu-arm64/ (once, ~20 s), then run the tests
#   scripts/arm64-qemu.sh --prepare  # only prepare
#   scripts/arm64-qemu.sh -- ARGS    # run python3.11 ARGS in the aarch64 userland instead
#
# Recipe (DESIGN.md, "Testing the ARM64 native path"): Debian's qemu-user-static runs an aarch64
# Python 3.11 unpacked from Debian's arm64 packages (apt-get download + dpkg -x, nothing is
# installed) with aarch64 wheels from PyPI (pip download --platform ...; pip install --no-deps
# --target). keystone has no aarch64 wheel: a stub module stands in for it and tests pass bytes
# assembled on the host. No binfmt_misc registration is needed. Needs root for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
Q="$ROOT/.qemu-arm64"
RFS="$Q/rootfs"
SITE="$Q/site"
HOSTPY="${HOSTPY:-$ROOT/.venv/bin/python}"
[ -x "$HOSTPY" ] || HOSTPY=python3

DEBS="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libexpat1 zlib1g libssl3
libbz2-1.0 libcrypt1 libdb5.3 libffi8 liblzma5 libncursesw6 libnsl2 libreadline8 libsqlite3-0 libtinfo6
libtirpc3 libuuid1 libgcc-s1 libstdc++6 libzstd1"
WHEELS="llvmlite==0.50.* numpy<3 capstone==5.0.* unicorn>=2.1.1,<2.2 pytest<10 iniconfig packaging pluggy pygments"

prepare() {
  [ -f "$Q/.ready" ] && return 0
  if ! command -v qemu-aarch64-static >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null
  fi
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
  fi
  apt-get update -qq
  rm -rf "$Q" && mkdir -p "$Q/debs" "$RFS" "$SITE" "$Q/wheels"
  (cd "$Q/debs" && apt-get download -qq $(for p in $DEBS; do printf '%s:arm64 ' "$p"; done))
  for d in "$Q"/debs/*.deb; do dpkg -x "$d" "$RFS"; done
  local plat="--only-binary=:all: --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64
    --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp --no-deps"
  "$HOSTPY" -m pip download -q $plat -d "$Q/wheels" $WHEELS
  "$HOSTPY" -m pip install -q $plat --no-compile --target "$SITE" "$Q"/wheels/*.whl
  # keystone has no aarch64 wheel: constants only, assembling raises (tests pass bytes)
  mkdir -p "$SITE/keystone"
  cat > "$SITE/keystone/__init__.py" <<'EOF'
"""Stand-in for keystone under qemu (no aarch64 wheel): constants only."""
KS_ARCH_ARM64, KS_ARCH_X86, KS_MODE_LITTLE_ENDIAN, KS_MODE_64 = 1, 4, 0, 8
class KsError(Exception):
    pass
class Ks:
    def __init__(self, *args):
        raise KsError("keystone is not available in the qemu lane: pass pre-assembled bytes")
EOF
  # pre-compiled bytecode (the host's CPython 3.11 writes the same format): imports ~3x faster
  "$HOSTPY" -m compileall -q -j 2 "$SITE" "$RFS/usr/lib/python3.11" "$ROOT/core" "$ROOT/tests" >/dev/null || true
  touch "$Q/.ready"
}

guest() {
  MELVIN_QEMU=1 MELVIN_WORKER_PREFIX="$(command -v qemu-aarch64-static) -L $RFS" PYTHONPATH="$SITE:$ROOT" PYTHONNOUSERSITE=1 QEMU_LD_PREFIX="$RFS" \
    qemu-aarch64-static -L "$RFS" "$RFS/usr/bin/python3.11" "$@"
}

prepare
case "${1:-}" in
  --prepare) exit 0 ;;
  --) shift; guest "$@" ;;
  *) cd "$ROOT" && guest -m pytest -q -p no:cacheprovider tests/test_native_arm64.py "$@" ;;
esac
