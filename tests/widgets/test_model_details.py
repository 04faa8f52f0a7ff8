"""The details pane inside a small host app: what it shows for an entry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import Static

from tests.fakes import checkpoints
from vllm_console.core.catalog import scan
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


async def test_weights_loaded_and_ignored_with_why(tmp_path: Path) -> None:
    folder = checkpoints.build("mistral-7b-instruct-v0.3", tmp_path / "mistral")
    scan.clear_memos()
    entry = scan.scan(tmp_path / "no-cache", [tmp_path]).entries[0]
    app = DetailsHost()
    async with app.run_test(size=(100, 60)) as pilot:
        app.query_one(ModelDetails).entry = entry
        await pilot.pause()
        text = shown_text(app)
    assert folder.name == entry.id
    assert "7.2B (13.5 GiB of weights)" in text
    assert "Weights vLLM loads (1)" in text and "consolidated.safetensors" in text
    assert "ignored model-00001-of-00003.safetensors: a second copy" in text


async def test_quantized_storage_is_shown_beside_the_dtype(tmp_path: Path) -> None:
    checkpoints.build("gpt-oss-20b", tmp_path / "gpt-oss-20b")
    scan.clear_memos()
    entry = scan.scan(tmp_path / "no-cache", [tmp_path]).entries[0]
    app = DetailsHost()
    async with app.run_test(size=(100, 60)) as pilot:
        app.query_one(ModelDetails).entry = entry
        await pilot.pause()
        text = shown_text(app)
    assert "20.9B (12.8 GiB of weights)" in text
    assert "bfloat16" in text and "uint8, bfloat16" in text and "MXFP4" in text
    assert "original/model.safetensors: in a subfolder" in text


async def test_details_of_a_modelscope_model(tmp_path: Path) -> None:
    """Its revision (the one its `.mv` names), the weights vLLM loads, where it was found."""
    from tests.fakes.msgen import FLAT_SET, model_files, write_ms_model

    write_ms_model(tmp_path, FLAT_SET, "Qwen/Qwen2.5-0.5B", model_files("x"), revision="v1.0.1")
    (entry,) = scan.scan(Path("/nonexistent"), [], ms_cache=tmp_path).entries
    app = DetailsHost()
    async with app.run_test(size=(60, 50)) as pilot:
        app.query_one(ModelDetails).entry = entry
        await pilot.pause()
        text = shown_text(app)
        for expected in ("ModelScope cache at", "Revisions", "v1.0.1", "Weights vLLM loads (1)"):
            assert expected in text
        assert "(no ref)" not in text  # a ModelScope revision is a name, not a commit
