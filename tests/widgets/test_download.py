"""The download dialog with a fake download function: progress, errors, cancel, success."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from textual.widgets import DataTable, Input, ProgressBar, RadioButton, Static

from vllm_console.app import VllmConsoleApp
from vllm_console.config import Settings
from vllm_console.core.hub import download as real_hub
from vllm_console.core.hub.download import DownloadError, DownloadProgress
from vllm_console.screens.download import DownloadScreen
from vllm_console.widgets.models.details import ModelDetails


def fake_hub(download: Callable[..., Path], modelscope: Callable[..., Path] | None = None) -> Any:
    return SimpleNamespace(
        DownloadError=DownloadError,
        download_model=download,
        download_from_modelscope=modelscope or download,
        default_output_dir=real_hub.default_output_dir,
        repo_id_problem=real_hub.repo_id_problem,
    )


def progress(done: int, total: int = 1000) -> DownloadProgress:
    return DownloadProgress("Org/Name", done, total, done // 500, 2, "model.safetensors")


def text_of(app: VllmConsoleApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def open_dialog(app: VllmConsoleApp, pilot: Any, repo_id: str) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.press("d")
    await pilot.pause()
    assert isinstance(app.screen, DownloadScreen)
    await pilot.press(*repo_id)


async def test_shows_endpoint_and_destination(settings: Settings, demo_catalog: Any) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog, hub=fake_hub(lambda *a, **k: Path()))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_dialog(app, pilot, "Qwen/Qwen2.5-0.5B")
        assert "https://huggingface.co" in text_of(app, "#download-endpoint")
        target = settings.cwd / "models" / "Qwen--Qwen2.5-0.5B"
        assert str(target) in text_of(app, "#download-target")
        app.screen.query_one("#dest-cache", RadioButton).value = True
        await pilot.pause()
        assert str(settings.hf_hub_cache) in text_of(app, "#download-target")
        await pilot.press("escape")
        assert not isinstance(app.screen, DownloadScreen)


async def test_progress_then_error_stays_in_the_dialog(
    settings: Settings, demo_catalog: Any
) -> None:
    release = threading.Event()
    calls: list[dict[str, Any]] = []

    def download(repo_id: str, **kwargs: Any) -> Path:
        calls.append(kwargs)
        kwargs["on_progress"](progress(500))
        release.wait(5)
        raise DownloadError("We couldn't connect to 'https://huggingface.co'")

    settings = Settings(**{**settings.__dict__, "hf_endpoint": "https://hf-mirror.com"})
    app = VllmConsoleApp(settings, catalog=demo_catalog, hub=fake_hub(download))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_dialog(app, pilot, "Org/Name")
        await pilot.press("enter")
        await pilot.pause(0.3)
        screen = app.screen
        assert screen.has_class("-running")
        assert screen.query_one(ProgressBar).progress == 500
        assert "1/2 files" in text_of(app, "#download-status")
        release.set()
        await pilot.pause(0.3)
        assert isinstance(app.screen, DownloadScreen) and not screen.has_class("-running")
        assert "couldn't connect" in text_of(app, "#download-error")
        assert calls[0]["endpoint"] == "https://hf-mirror.com"
        assert calls[0]["output_dir"] == settings.cwd / "models" / "Org--Name"


async def test_invalid_repo_id_is_refused(settings: Settings, demo_catalog: Any) -> None:
    app = VllmConsoleApp(settings, catalog=demo_catalog, hub=fake_hub(lambda *a, **k: Path()))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_dialog(app, pilot, "not a repo")
        await pilot.press("enter")
        await pilot.pause()
        assert "Org/Name" in text_of(app, "#download-error")
        assert not app.screen.has_class("-running")


async def test_cancel_sets_the_event(settings: Settings, demo_catalog: Any) -> None:
    seen: list[threading.Event] = []

    def download(repo_id: str, *, cancel: threading.Event, **kwargs: Any) -> Path:
        seen.append(cancel)
        cancel.wait(5)
        raise real_hub.DownloadCancelled()

    app = VllmConsoleApp(settings, catalog=demo_catalog, hub=fake_hub(download))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_dialog(app, pilot, "Org/Name")
        await pilot.press("enter")
        await pilot.pause(0.2)
        await pilot.press("escape")  # while running: cancel, stay open
        await pilot.pause(0.3)
        assert seen and seen[0].is_set()
        assert isinstance(app.screen, DownloadScreen)
        assert "cancelled" in text_of(app, "#download-error")
        await pilot.press("escape")  # now idle: close
        assert not isinstance(app.screen, DownloadScreen)


async def test_success_rescans_and_selects_the_new_model(
    settings: Settings, model_folder: Callable[..., Path]
) -> None:
    def download(repo_id: str, *, output_dir: Path, on_progress: Any, **kwargs: Any) -> Path:
        on_progress(progress(1000))
        return model_folder(output_dir)

    # The real catalog: the new folder must be found under cwd/models by a rescan.
    model_folder(settings.cwd / "models" / "Aaa--Existing")
    app = VllmConsoleApp(settings, hub=fake_hub(download))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_dialog(app, pilot, "Org/Tiny-Model")
        await pilot.press("enter")
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        assert not isinstance(app.screen, DownloadScreen)
        assert app.query_one(DataTable).row_count == 2
        details = app.query_one(ModelDetails)
        assert details.entry is not None
        assert details.entry.path == settings.cwd / "models" / "Org--Tiny-Model"
        assert app.query_one(Input).value == ""


async def test_the_hub_switch_is_reached_by_keyboard_and_picks_modelscope(
    settings: Settings, demo_catalog: Any
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def huggingface(repo_id: str, **kwargs: Any) -> Path:
        calls.append(("huggingface", kwargs))
        raise DownloadError("stop here")

    def modelscope(repo_id: str, **kwargs: Any) -> Path:
        calls.append(("modelscope", kwargs))
        raise DownloadError("stop here")

    site = replace(settings, modelscope_endpoint_override="https://ms.example")
    app = VllmConsoleApp(site, catalog=demo_catalog, hub=fake_hub(huggingface, modelscope))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_dialog(app, pilot, "Qwen/Qwen2.5-0.5B")
        assert "https://huggingface.co" in text_of(app, "#download-endpoint")
        await pilot.press("shift+tab")  # from the repository to the hub switch
        assert app.screen.focused is app.screen.query_one("#download-source")
        await pilot.press("right", "enter")
        await pilot.pause()
        assert app.screen.query_one("#source-ms", RadioButton).value
        assert "https://ms.example (MODELSCOPE_ENDPOINT" in text_of(app, "#download-endpoint")
        app.screen.query_one("#dest-cache", RadioButton).value = True
        await pilot.pause()
        assert str(site.modelscope_cache) in text_of(app, "#download-target")
        await pilot.press("ctrl+d")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [name for name, _ in calls] == ["modelscope"]
        kwargs = calls[0][1]
        assert kwargs["endpoint"] == "https://ms.example"
        assert kwargs["cache_dir"] == site.modelscope_cache
        assert "stop here" in text_of(app, "#download-error")


async def test_the_hub_setting_preselects_modelscope(settings: Settings, demo_catalog: Any) -> None:
    app = VllmConsoleApp(
        replace(settings, hub="modelscope"),
        catalog=demo_catalog,
        hub=fake_hub(lambda *a, **k: Path()),
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await open_dialog(app, pilot, "Org/Name")
        assert app.screen.query_one("#source-ms", RadioButton).value
        assert "https://www.modelscope.cn" in text_of(app, "#download-endpoint")
