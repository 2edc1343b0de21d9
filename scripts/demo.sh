#!/usr/bin/env bash
# `npm run demo`: a job end to end on a local nats-server (started here unless NATS_URL is set).
set -euo pipefail
cd "$(dirname "$0")/.."
nats_bin=""
if [ -z "${NATS_URL:-}" ]; then nats_bin=$(bash scripts/ensure-nats.sh); fi
exec node --import tsx scripts/demo.ts ${nats_bin:+"$nats_bin"}
