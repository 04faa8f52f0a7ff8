#!/usr/bin/env bash
# The browser the end-to-end test of `vllm-console web` drives: Debian's (or Ubuntu's)
# chromium and its driver, installed once through apt-get when missing (as root, or with
# sudo that asks no password). Says why on stderr when it cannot; the test then skips.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "browser test: no apt-get here; install chromium and chromedriver yourself" >&2
    exit 0
fi
as_root=()
if [ "$(id -u)" != "0" ]; then
    if sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        echo "browser test: chromium missing and not root (no password-less sudo)" >&2
        exit 0
    fi
fi
echo "Installing chromium and chromium-driver (apt-get) for the browser test ..." >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >&2 \
    && "${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2 \
    || echo "browser test: apt-get could not install chromium chromium-driver" >&2
