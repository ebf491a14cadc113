#!/usr/bin/env bash
# The browser the end-to-end tests drive: Debian's chromium package (Playwright launches it by path; no browser
# is ever downloaded, so `playwright install` is not needed). Idempotent: a second run only checks.
#   bash scripts/browser.sh     install chromium if needed, check that it starts headless, print its path
# Progress goes to stderr; the last stdout line is the executable, e.g. /usr/bin/chromium
set -euo pipefail

say() { echo "browser.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

find_chromium() {
  local candidate
  for candidate in "${TUNEFORGE_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      echo "$candidate"
      return
    fi
  done
}

install_chromium() {
  [ "$(id -u)" -eq 0 ] || die "chromium is not installed and installing it needs root: run 'apt-get install chromium' as root"
  local log=/tmp/tuneforge-chromium-install.log
  say "installing the Debian package chromium (log: $log)"
  export DEBIAN_FRONTEND=noninteractive
  # fonts-noto-cjk: the console's Chinese strings render as glyphs, not boxes, in the screenshots.
  local apt=(apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk fonts-dejavu-core)
  # Refresh the package lists only when the install cannot find what it needs with the current ones.
  if ! "${apt[@]}" >"$log" 2>&1; then
    say "refreshing the package lists (apt-get update)"
    if ! { apt-get update -qq && "${apt[@]}"; } >>"$log" 2>&1; then
      tail -n 20 "$log" >&2
      die "apt-get install chromium failed (full output: $log)"
    fi
  fi
}

CHROMIUM=$(find_chromium)
if [ -z "$CHROMIUM" ]; then
  install_chromium
  CHROMIUM=$(find_chromium)
  [ -n "$CHROMIUM" ] || die "installed chromium but found no /usr/bin/chromium"
fi
# A quick headless start proves the binary and its libraries work; as root chromium refuses to run sandboxed.
if ! version=$("$CHROMIUM" --headless --no-sandbox --disable-gpu --version 2>/dev/null); then
  die "$CHROMIUM does not start; reinstall it with 'apt-get install --reinstall chromium'"
fi
say "using $version"
echo "$CHROMIUM"
