#!/usr/bin/env bash
# `npm run test:chaos [-- RUNS]`: the chaos suite at full size (5,000 batches), RUNS times in a row (default 1).
# Each run prints a "chaos figures:" line; the script stops at the first failing run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
export CHAOS_BATCHES=${CHAOS_BATCHES:-5000}
for i in $(seq 1 "$runs"); do
  echo "chaos run $i/$runs ($CHAOS_BATCHES batches)"
  bash scripts/test.sh test/chaos.test.ts 2>&1 | tee "/tmp/jetbatch-chaos-run-$i.log" | grep -E '^# (pass|fail)|chaos figures' || true
  grep -q '^# fail 0' "/tmp/jetbatch-chaos-run-$i.log" && grep -q '^# pass 1' "/tmp/jetbatch-chaos-run-$i.log" || { echo "chaos run $i failed (log: /tmp/jetbatch-chaos-run-$i.log)"; exit 1; }
done
echo "all $runs chaos runs passed"
