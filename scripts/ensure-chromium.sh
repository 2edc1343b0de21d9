#!/usr/bin/env bash
# Prints the path of a Chromium binary for the browser tests of `jetbatch ui` (test/ui.test.ts, driven by
# playwright-core), installing Debian's chromium package when none is found. JETBATCH_TEST_CHROMIUM wins when set.
set -euo pipefail
find_chromium() {
  if [ -n "${JETBATCH_TEST_CHROMIUM:-}" ] && [ -x "$JETBATCH_TEST_CHROMIUM" ]; then echo "$JETBATCH_TEST_CHROMIUM"; return 0; fi
  for name in chromium chromium-browser; do command -v "$name" 2>/dev/null && return 0; done
  for p in /usr/bin/chromium /usr/lib/chromium/chromium /usr/bin/chromium-browser; do
    [ -x "$p" ] && { echo "$p"; return 0; }
  done
  return 1
}
if bin=$(find_chromium); then echo "$bin"; exit 0; fi
echo "chromium not found; installing Debian's chromium package" >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >&2
fi
if bin=$(find_chromium); then echo "$bin"; exit 0; fi
echo "could not install chromium: install it yourself (Debian/Ubuntu: apt-get install chromium) or set JETBATCH_TEST_CHROMIUM" >&2
exit 1
