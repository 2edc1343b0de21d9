#!/usr/bin/env bash
# The test suite: type checks, then every test file under node:test. Tests start their own nats-server processes.
set -euo pipefail
cd "$(dirname "$0")/.."
nats_bin=$(bash scripts/ensure-nats.sh)
export PATH="$(dirname "$nats_bin"):$PATH"
# The interpreter of the Python handler tests (test/helpers/python.ts): msgpack and numpy, Debian's when none is set.
JETBATCH_TEST_PYTHON=$(JETBATCH_PYTHON="${JETBATCH_TEST_PYTHON:-}" bash scripts/ensure-python.sh)
export JETBATCH_TEST_PYTHON
JETBATCH_PYTHON="${JETBATCH_TEST_PYTHON:-}" bash scripts/ensure-torch.sh >/dev/null   # python3-torch for test/mnist-torch.test.ts
# Chromium for the browser tests of `jetbatch ui` (test/ui.test.ts), Debian's when none is set.
JETBATCH_TEST_CHROMIUM=$(bash scripts/ensure-chromium.sh)
export JETBATCH_TEST_CHROMIUM
npx tsc -p tsconfig.test.json --noEmit
files=(test/*.test.ts)
if [ "$#" -gt 0 ]; then files=("$@"); fi
exec node --import tsx --test --test-concurrency=1 --test-timeout=300000 "${files[@]}"
