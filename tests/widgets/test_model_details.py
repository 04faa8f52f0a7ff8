"""The details pane inside a small host app: what it shows for an entry."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import Static

from vllm_console.widgets.models.details import ModelDetails


class DetailsHost(App[None]):
    """The pane alone: its colours come with it (details.tcss), not from the App."""

    def compose(self) -> ComposeResult:
        yield ModelDetails()


def shown_text(app: App[None]) -> str:
    return "\n".join(str(static.render()) for static in app.query(Static))


async def test_nothing_selected() -> None:
    app = DetailsHost()
    async with app.run_test(size=(60, 30)):
        assert "No model selected" in shown_text(app)


async def test_details_of_a_cache_model(demo_models: list[Any]) -> None:
    entry = demo_models[0]
    app = DetailsHost()
    async with app.run_test(size=(60, 40)) as pilot:
        app.query_one(ModelDetails).entry = entry
        await pilot.pause()
        text = shown_text(app)
        for expected in (
            entry.id,
            "Hugging Face cache at",
            "Qwen2ForCausalLM",
            "Layers",
            "28",
            "KV heads",
            "32K tokens",
            "Revisions",
            entry.revisions[0].commit[:12],
            "main",
            "Files (6)",
            "tokenizer.json",
        ):
            assert expected in text


async def test_problems_are_marked(demo_models: list[Any]) -> None:
    entry = demo_models[-1]  # my-finetune: no config.json, no weights
    app = DetailsHost()
    async with app.run_test(size=(60, 40)) as pilot:
        app.query_one(ModelDetails).entry = entry
        await pilot.pause()
        problems = app.query_one(".details-problems", Static)
        assert "no config.json" in str(problems.render())
        assert "no weights" in str(problems.render())
        others = [w for w in app.query(".details-block") if w is not problems]
        assert all(problems.styles.color != w.styles.color for w in others)
        assert problems.styles.color != app.query_one(".details-title").styles.color


async def test_undetailed_entry_says_it_is_being_read(demo_models: list[Any]) -> None:
    entry = replace(demo_models[1], detailed=False)
    app = DetailsHost()
    async with app.run_test(size=(60, 40)) as pilot:
        app.query_one(ModelDetails).entry = entry
        await pilot.pause()
        text = shown_text(app)
        assert str(entry.path) in text.replace("\n", "") or entry.id in text
        assert "Reading config and sizes" in text
