"""Snapshots of the chat pane (a short conversation, its status line) and the metrics panel.

Both are fed fixed data (a stand-in prober, a recorded conversation, fixed readings), so
the pictures do not depend on timing. Regenerate after an intended change:

    .venv/bin/pytest tests/snapshots/test_chat_snapshot.py --snapshot-update
"""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import Footer

from vllm_console.core.endpoint.client import ChatStats, EndpointStatus, ServedModel
from vllm_console.core.endpoint.metrics import Histogram, MetricsSnapshot, rates
from vllm_console.widgets.chat.pane import ChatPane, ChatParams, EndpointConfig, Turn
from vllm_console.widgets.chat.parts import PromptInput
from vllm_console.widgets.metrics.panel import MetricsPanel

URL = "http://gpu-box:8000/v1"
MODEL = "Qwen/Qwen2.5-7B-Instruct"

QUESTION = "How do I check that vLLM sees my GPUs?"
ANSWER = """\
Run `nvidia-smi` first, then ask vLLM itself:

```bash
python -c "import torch; print(torch.cuda.device_count())"
```

- **0** means the driver or CUDA build is wrong.
- Set `CUDA_VISIBLE_DEVICES` to choose which GPUs vLLM uses."""
FOLLOW_UP = "And the KV cache size?"
SHORT = "The startup log says it: look for `GPU KV cache size: N tokens`."


async def fixed_probe(base_url: str, api_key: str | None, model: str | None) -> EndpointStatus:
    served = (ServedModel(MODEL, 32768, "vllm"), ServedModel("Qwen/Qwen2.5-0.5B", 32768, "vllm"))
    return EndpointStatus(
        base_url, True, healthy=True, is_vllm=True, version="0.32.0", models=served,
        models_listed=True, expected_model=model,
    )  # fmt: skip


def stats(tokens: int, finish: str) -> ChatStats:
    return ChatStats(MODEL, 0.084, 1.92, tokens, 52.3, finish, 31, tokens)


class ChatHost(App[None]):
    def compose(self) -> ComposeResult:
        yield ChatPane(
            EndpointConfig(URL, "sk-local", MODEL),
            params=ChatParams("You are a concise vLLM expert.", 0.2, None, 64),
            prober=fixed_probe,
        )
        yield Footer()

    async def on_mount(self) -> None:
        pane = self.query_one(ChatPane)
        await pane.load(
            [
                Turn("user", QUESTION),
                Turn("assistant", ANSWER, MODEL, stats(96, "stop")),
                Turn("user", FOLLOW_UP),
                Turn("assistant", SHORT, MODEL, stats(64, "length")),
            ]
        )
        pane.query_one(PromptInput).focus()


async def settle(pilot: Any) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


def test_chat_pane_100x30(snap_compare: Any) -> None:
    assert snap_compare(ChatHost(), terminal_size=(100, 30), run_before=settle)


class StillPanel(MetricsPanel):
    """No polling: the readings come from the test."""

    def _start(self) -> None:
        pass


def reading(t: float, generated: float, prompt: float, kv: float) -> MetricsSnapshot:
    bounds = (0.05, 0.1, 0.25, 0.5, float("inf"))
    counts = tuple(round(t * c) for c in (1, 3, 4, 4.5, 5))
    return MetricsSnapshot(
        t, requests_running=3, requests_waiting=1, kv_cache_usage=kv,
        prompt_tokens=prompt, generation_tokens=generated, preemptions=2,
        prefix_cache_hits=prompt * 0.4, prefix_cache_queries=prompt,
        ttft=Histogram(tuple(zip(bounds, counts, strict=True)), counts[-1], t * 0.3),
    )  # fmt: skip


class MetricsHost(App[None]):
    def compose(self) -> ComposeResult:
        yield StillPanel(URL, interval=1.5)

    def on_mount(self) -> None:
        panel = self.query_one(StillPanel)
        earlier = None
        for i in range(40):
            t = 100.0 + 1.5 * i
            now = reading(t, 1000 * i + 40 * i * (i % 7), 600 * i, 0.2 + 0.012 * i)
            panel.post_message(panel.Updated(now, rates(earlier, now) if earlier else None))
            earlier = now


def test_metrics_panel_100x30(snap_compare: Any) -> None:
    assert snap_compare(MetricsHost(), terminal_size=(100, 30), run_before=settle)
