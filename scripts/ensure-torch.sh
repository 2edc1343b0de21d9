#!/usr/bin/env bash
# Prints the path of a Python interpreter that can run handlers/mnist-torch (torch, numpy, msgpack), installing
# Debian's python3 python3-msgpack python3-numpy python3-torch when they are missing (as root or with sudo), as
# scripts/ensure-nats.sh does for nats-server. The interpreter is $JETBATCH_PYTHON when set, else /usr/bin/python3
# (Debian's, the one python3-torch installs into; a pyenv or virtualenv python3 on PATH does not see it). Packages
# are installed for /usr/bin/python3 only: any other interpreter must already have them.
set -euo pipefail
py="${JETBATCH_PYTHON:-/usr/bin/python3}"
ready() { [ -x "$py" ] || command -v "$py" >/dev/null 2>&1 || return 1; "$py" -c 'import torch, numpy, msgpack' >/dev/null 2>&1; }
if ready; then echo "$py"; exit 0; fi
if [ "$py" != /usr/bin/python3 ]; then
  echo "$py cannot import torch, numpy and msgpack: install them into it (pip install torch numpy msgpack)," >&2
  echo "or unset JETBATCH_PYTHON to use Debian's /usr/bin/python3 with python3-torch" >&2
  exit 1
fi
# Debian's interpreter: the packages scripts/ensure-python.sh installs, plus python3-torch, in one apt-get (not by
# calling ensure-python.sh: it is satisfied by another python3 on PATH, which python3-torch does not install into).
echo "PyTorch not found for $py; installing Debian's python3 python3-msgpack python3-numpy python3-torch (about 1 GB)" >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq >&2 &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-msgpack python3-numpy python3-torch >&2
fi
if ready; then echo "$py"; exit 0; fi
echo "could not install PyTorch for $py: on Debian/Ubuntu apt-get install python3-torch python3-numpy python3-msgpack;" >&2
echo "elsewhere make a virtualenv with torch, numpy and msgpack and set JETBATCH_PYTHON to its bin/python" >&2
exit 1
