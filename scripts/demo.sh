#!/usr/bin/env bash
# `npm run demo`: batch inference end to end (scripts/demo.ts) on a local nats-server, started here unless NATS_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."
nats_bin=""
if [ -z "${NATS_URL:-}" ]; then nats_bin=$(bash scripts/ensure-nats.sh); fi
exec node --import tsx scripts/demo.ts ${nats_bin:+"$nats_bin"}
