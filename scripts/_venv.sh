# Shared by scripts/start and scripts/test: make .venv and install the project into it,
# only when pyproject.toml changed since the last install (so a second run is instant).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
py=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
stamp="$venv/.installed-$1"
want=$(cat "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "Installing vllm-console ($1) into .venv ..." >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root$2" >&2
    echo "$want" >"$stamp"
fi
# The environment may forbid writing bytecode (PYTHONDONTWRITEBYTECODE); without it every start
# recompiles the package. compileall writes it explicitly and skips what is up to date.
"$venv/bin/python" -m compileall -q "$root/tui/vllm_console" >/dev/null || true
