#!/usr/bin/env bash
# Prints the path of a nats-server binary, installing Debian's package when none is found.
set -euo pipefail
find_nats() {
  command -v nats-server 2>/dev/null && return 0
  for p in /usr/sbin/nats-server /usr/local/bin/nats-server /usr/bin/nats-server; do
    [ -x "$p" ] && { echo "$p"; return 0; }
  done
  return 1
}
if bin=$(find_nats); then echo "$bin"; exit 0; fi
echo "nats-server not found; installing Debian's nats-server package" >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nats-server >&2
fi
if bin=$(find_nats); then echo "$bin"; exit 0; fi
echo "could not install nats-server: install it yourself (Debian/Ubuntu: apt-get install nats-server;" >&2
echo "elsewhere: https://github.com/nats-io/nats-server/releases) and put it on PATH" >&2
exit 1
