"""Fuzzing the settings reader: any text as a `.env` file gives settings or a named error
(`EnvFileError`, `ConfigError`), within `LIMIT_S`, never anything else."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import strategies as st

from vllm_console.config import KEYS, ConfigError, EnvFileError, load_settings

LIMIT_S = 1.0

_SEEDS = (
    "VLLM_CONSOLE_PORT=8123\n",
    "export VLLM_MODEL='my model' # c\n",
    'VLLM_API_KEY="line one\nline two"\n',
    "HF_HOME=${VLLM_CONSOLE_PORT}/hf\n",
    "VLLM_CONSOLE_MAX_MODEL_LEN=4096\r\n",
    "\ufeffVLLM_CONSOLE_GPU_MEMORY_UTILIZATION=0.5\n",
)
_VALUES = ("", "0", "-1", "9" * 400, "1e999", "nan", "'", '"', "${X}", "\x00", "\x1b]0;x\x07")


def check_env_text(text: str) -> None:
    """`text` written as `.env` in a fresh folder: settings, or a named error."""
    with tempfile.TemporaryDirectory(prefix="fuzz-env-") as tmp:
        folder = Path(tmp)
        (folder / ".env").write_text(text, encoding="utf-8", errors="surrogatepass")
        start = time.monotonic()
        try:
            load_settings(environ={}, cwd=folder, home=folder)
        except (EnvFileError, ConfigError) as exc:
            assert str(exc), "an error without a message"
        took = time.monotonic() - start
        assert took < LIMIT_S, f"took {took:.2f} s"


def _line(draw: st.DrawFn) -> str:
    key = draw(st.sampled_from([k.name for k in KEYS] + ["X", "export X", "", "=", "#"]))
    value = draw(st.one_of(st.sampled_from(_VALUES), st.text(max_size=40)))
    quote = draw(st.sampled_from(["", "'", '"']))
    end = draw(st.sampled_from(["\n", "\r\n", "", " # note\n"]))
    return f"{key}={quote}{value}{quote}{end}"


generated_env_texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.composite(_line)(), max_size=12).map("".join),
)
mutated_env_texts = st.builds(
    lambda seed, at, insert: seed[:at] + insert + seed[at:],
    st.sampled_from(_SEEDS),
    st.integers(0, 40),
    st.text(max_size=8),
)

# parser name -> (its check, generated inputs, mutated inputs), for bench/fuzz_campaign.py
PARSERS: dict[str, tuple[Callable[[str], None], st.SearchStrategy[str], st.SearchStrategy[str]]] = {
    "env_file": (check_env_text, generated_env_texts, mutated_env_texts),
}
