#!/usr/bin/env bash
# Set up predistort on a fresh Debian 12 (bookworm) machine, idempotently:
#   - Debian's libllvm19: Dr.Jit compiles its CPU kernels with LLVM, and the default LLVM 14/15/16 abort
#     the process at the first training step;
#   - a virtualenv .venv with the pinned packages of requirements.txt, and predistort itself (editable).
# Usage:  ./setup.sh          the app, the package and its command line
#         ./setup.sh --dev    also the test and benchmark tools, and Debian's chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")"
dev=0; [ "${1:-}" = "--dev" ] && dev=1
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"

missing=()
ls /usr/lib/*/libLLVM.so.19* /usr/lib/*/libLLVM-19.so* >/dev/null 2>&1 || missing+=(libllvm19)
[ "$dev" = 1 ] && ! command -v chromium >/dev/null && missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]} (Debian packages)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
req=requirements.txt; [ "$dev" = 1 ] && req=requirements-dev.txt
.venv/bin/python -m pip install -q --disable-pip-version-check -r "$req"
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
echo "setup: ready (.venv)"
