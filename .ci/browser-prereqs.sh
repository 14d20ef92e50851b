#!/usr/bin/env bash
# What the browser tests (pytest -m browser; tests/test_browser.py) need beyond the Python
# packages: Chromium from Debian's packages, run as root (CI). Playwright itself comes from PyPI
# with the course's extras and drives this browser through executable_path; never run
# `playwright install` (it downloads a browser of its own, which this network refuses).
# Idempotent: does nothing when Chromium is already there. Then set COURSE_REQUIRE_BROWSER=1
# for pytest so that a missing browser fails the tests instead of skipping them.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "browser-prereqs: Chromium is missing and installing it needs root:" >&2
        echo "  sudo apt-get install -y chromium" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Package lists may be missing or stale on a fresh machine: refresh them once if needed.
    apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }
fi
chromium --version
# The flags the tests use: headless, no sandbox as root, no background connections.
chromium --headless=new --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --dump-dom about:blank \
    >/dev/null 2>&1 || { echo "browser-prereqs: Chromium is installed but did not start" >&2; exit 1; }
echo "browser-prereqs: Chromium starts headless"
