#!/usr/bin/env bash
# Prints the path of a Python interpreter that can run jetbatch's Python handlers (it imports msgpack; the tests'
# handlers import numpy too), installing Debian's python3 python3-msgpack python3-numpy when none is found (as root
# or with sudo), as scripts/ensure-nats.sh does for nats-server. Tried in order: $JETBATCH_PYTHON when set (it must
# work), Debian's /usr/bin/python3, python3 on PATH (often a pyenv or virtualenv build without those packages).
set -euo pipefail
ready() { { [ -x "$1" ] || command -v "$1" >/dev/null 2>&1; } && "$1" -c 'import msgpack, numpy' >/dev/null 2>&1; }
if [ -n "${JETBATCH_PYTHON:-}" ]; then
  if ready "$JETBATCH_PYTHON"; then echo "$JETBATCH_PYTHON"; exit 0; fi
  echo "$JETBATCH_PYTHON cannot import msgpack and numpy: install them into it (pip install msgpack numpy)," >&2
  echo "or unset JETBATCH_PYTHON to use Debian's /usr/bin/python3" >&2
  exit 1
fi
find_python() {
  for p in /usr/bin/python3 "$(command -v python3 2>/dev/null || true)"; do
    [ -n "$p" ] && ready "$p" && { echo "$p"; return 0; }
  done
  return 1
}
if bin=$(find_python); then echo "$bin"; exit 0; fi
echo "no python3 with msgpack and numpy found; installing Debian's python3 python3-msgpack python3-numpy" >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq >&2 &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-msgpack python3-numpy >&2
fi
if bin=$(find_python); then echo "$bin"; exit 0; fi
echo "could not install Python for jetbatch: on Debian/Ubuntu apt-get install python3 python3-msgpack python3-numpy;" >&2
echo "elsewhere make a virtualenv with msgpack and numpy and set JETBATCH_PYTHON to its bin/python" >&2
exit 1
