#!/usr/bin/env bash
# `npm run demo`: batch inference end to end (scripts/demo.ts) on a local nats-server, started here unless NATS_URL is set.
# `npm run demo -- --python`: the same with the PyTorch handler (handlers/mnist-torch) in Python worker processes; the
# interpreter is $JETBATCH_PYTHON, else Debian's /usr/bin/python3, with python3-torch installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python=""
for arg in "$@"; do
  case "$arg" in
    --python) python=yes ;;
    *) echo "usage: npm run demo [-- --python]" >&2; exit 2 ;;
  esac
done
nats_bin=""
if [ -z "${NATS_URL:-}" ]; then nats_bin=$(bash scripts/ensure-nats.sh); fi
if [ -n "$python" ]; then python=$(bash scripts/ensure-torch.sh); fi
exec node --import tsx scripts/demo.ts ${nats_bin:+--nats-server "$nats_bin"} ${python:+--python "$python"}
