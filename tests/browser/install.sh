#!/usr/bin/env bash
# What the browser test (tests/browser/test_ui.py) needs beyond the venv: Debian's
# Chromium at /usr/bin/chromium. Playwright drives it through `executable_path`; it never
# downloads a browser of its own (that download cannot reach its host from here).
# Idempotent: does nothing when /usr/bin/chromium is already there. The Python
# `playwright` package comes with the venv (pyproject's dev group).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
else
    echo "install.sh: /usr/bin/chromium is missing and installing it needs root (apt-get)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends chromium
/usr/bin/chromium --version
