"""The download dialog: hub, repo id, revision and destination in; a progress bar while it runs.

The download itself is `core.hub.download_model` (Hugging Face) or
`core.hub.download_from_modelscope` (ModelScope), run in a thread worker. Progress comes
back by message (at most every PROGRESS_INTERVAL seconds); cancelling sets the Event the
hub checks. Errors stay in the dialog, in one plain line: the console keeps running.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, ProgressBar, RadioButton, RadioSet, Static

from vllm_console.config import Settings
from vllm_console.core.text import visible
from vllm_console.messages import ModelDownloaded
from vllm_console.widgets.worker_errors import ReportsWorkerErrors

PROGRESS_INTERVAL = 0.1
DEFAULT_ENDPOINT = "https://huggingface.co"
MODELSCOPE_ENDPOINT = "https://www.modelscope.cn"


class Hub(Protocol):
    """The part of `vllm_console.core.hub.download` the dialog uses (tests pass a fake)."""

    DownloadError: type[Exception]
    download_model: Callable[..., Path]
    download_from_modelscope: Callable[..., Path]

    def default_output_dir(self, models_dir: Path, repo_id: str) -> Path: ...
    def repo_id_problem(self, repo_id: str) -> str | None: ...


def default_hub() -> Hub:
    return cast(Hub, importlib.import_module("vllm_console.core.hub.download"))


@dataclass(frozen=True)
class Request:
    repo_id: str
    revision: str | None
    output_dir: Path | None
    cache_dir: Path | None
    source: str = "huggingface"


class DownloadScreen(ReportsWorkerErrors, ModalScreen[None]):
    """Asks what to download and where, then downloads it with a cancellable progress bar."""

    DEFAULT_CSS = Path(__file__).with_name("download.tcss").read_text(encoding="utf-8")

    BINDINGS = [
        Binding(
            "escape",
            "cancel",
            "Cancel / close",
            id="download.cancel",
            tooltip="Cancel the download, or close the dialog when none runs",
        ),
        Binding(
            "ctrl+d",
            "start",
            "Download",
            id="download.start",
            tooltip="Download the repository typed above into the hub cache",
        ),
    ]

    class Progress(Message):
        def __init__(self, progress: Any) -> None:
            super().__init__()
            self.progress = progress

    class Failed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Done(Message):
        def __init__(self, request: Request, path: Path) -> None:
            super().__init__()
            self.request, self.path = request, path

    running: reactive[bool] = reactive(False)

    def __init__(self, settings: Settings, *, hub: Hub | None = None) -> None:
        super().__init__()
        self._settings = settings
        self._hub = hub
        self._cancel = threading.Event()

    @property
    def hub(self) -> Hub:
        if self._hub is None:
            self._hub = default_hub()
        return self._hub

    def compose(self) -> ComposeResult:
        with Vertical(id="download-dialog"):
            yield Static("Download a model", id="download-title")
            with Horizontal(classes="download-row", id="download-source-row"):
                yield Label("Hub", classes="download-label")
                with RadioSet(id="download-source"):
                    modelscope = self._settings.hub == "modelscope"
                    yield RadioButton("Hugging Face", value=not modelscope, id="source-hf")
                    yield RadioButton("ModelScope", value=modelscope, id="source-ms")
            with Horizontal(classes="download-row"):
                yield Label("Repository", classes="download-label")
                yield Input(
                    placeholder="Org/Name, e.g. Qwen/Qwen2.5-0.5B-Instruct", id="download-repo"
                )
            with Horizontal(classes="download-row"):
                yield Label("Revision", classes="download-label")
                yield Input(placeholder="main", id="download-revision")
            with Horizontal(classes="download-row", id="download-dest-row"):
                yield Label("Save to", classes="download-label")
                with RadioSet(id="download-dest"):
                    yield RadioButton("models/Org--Name", value=True, id="dest-folder")
                    yield RadioButton(self._cache_label(), id="dest-cache")
            yield Static(id="download-target", markup=False)
            yield Static(id="download-endpoint", markup=False)
            yield ProgressBar(id="download-progress", show_eta=False)
            yield Static(id="download-status", markup=False)
            yield Static(id="download-error", markup=False)
            with Horizontal(id="download-buttons"):
                yield Button("Download", variant="primary", id="download-start")
                yield Button("Close", id="download-cancel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#download-repo", Input).focus()
        self._update_target()

    def on_unmount(self) -> None:
        # Leaving (or quitting) must not leave a download running behind the user's back.
        self._cancel.set()

    def _source(self) -> str:
        modelscope = self.query_one("#source-ms", RadioButton).value
        return "modelscope" if modelscope else "huggingface"

    def _cache_label(self) -> str:
        return "ModelScope cache" if self._settings.hub == "modelscope" else "Hugging Face cache"

    def _endpoint_text(self, source: str) -> str:
        if source == "modelscope":
            endpoint = self._settings.modelscope_endpoint
            if endpoint is None:
                return f"Endpoint: {MODELSCOPE_ENDPOINT} (set MODELSCOPE_ENDPOINT for another site)"
            key = "MODELSCOPE_ENDPOINT"
            if self._settings.modelscope_endpoint_override is None:
                key = "MODELSCOPE_DOMAIN"
            return f"Endpoint: {endpoint} ({key} from {self._settings.origin(key)})"
        endpoint = self._settings.hf_endpoint
        if endpoint is None:
            return f"Endpoint: {DEFAULT_ENDPOINT} (set HF_ENDPOINT or --hf-endpoint for a mirror)"
        return f"Endpoint: {endpoint} (HF_ENDPOINT from {self._settings.origin('HF_ENDPOINT')})"

    def _request(self) -> Request:
        repo_id = self.query_one("#download-repo", Input).value.strip()
        revision = self.query_one("#download-revision", Input).value.strip() or None
        source = self._source()
        if self.query_one("#dest-cache", RadioButton).value:
            modelscope = source == "modelscope"
            cache = self._settings.modelscope_cache if modelscope else self._settings.hf_hub_cache
            return Request(repo_id, revision, None, cache, source)
        output = self.hub.default_output_dir(self._settings.cwd / "models", repo_id or "Org/Name")
        return Request(repo_id, revision, output, None, source)

    @on(Input.Changed)
    @on(RadioSet.Changed)
    def _update_target(self) -> None:
        request = self._request()
        target = request.output_dir or request.cache_dir
        self.query_one("#download-target", Static).update(visible(f"→ {target}"))
        name = request.repo_id.replace("/", "--") if "/" in request.repo_id else "Org--Name"
        # A label is markup: what was typed shows as typed.
        self.query_one("#dest-folder", RadioButton).label = Content(visible(f"models/{name}"))
        hub_name = "ModelScope" if request.source == "modelscope" else "Hugging Face"
        self.query_one("#dest-cache", RadioButton).label = f"{hub_name} cache"
        endpoint = self._endpoint_text(request.source)
        self.query_one("#download-endpoint", Static).update(visible(endpoint))

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#download-start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#download-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_start(self) -> None:
        if self.running:
            return
        request = self._request()
        if not request.repo_id:
            problem: str | None = "Type a repository id, e.g. Qwen/Qwen2.5-0.5B-Instruct."
        else:
            problem = self.hub.repo_id_problem(request.repo_id)
        if problem:
            self._show_error(problem)
            return
        self._show_error("")
        self._cancel = threading.Event()
        self.running = True
        self.query_one("#download-progress", ProgressBar).update(total=None, progress=0)
        fetching = visible(f"Connecting to fetch {request.repo_id}…")
        self.query_one("#download-status", Static).update(fetching)
        self._download(request, self._cancel)

    def action_cancel(self) -> None:
        if self.running:
            self._cancel.set()
            self.query_one("#download-status", Static).update("Cancelling…")
        else:
            self.dismiss(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start":
            return not self.running
        return True

    def watch_running(self, running: bool) -> None:
        self.set_class(running, "-running")
        self.query_one("#download-start", Button).disabled = running
        for selector in (
            "#download-source",
            "#download-repo",
            "#download-revision",
            "#download-dest",
        ):
            self.query_one(selector).disabled = running
        self.query_one("#download-cancel", Button).label = "Stop" if running else "Close"
        if running:
            self.query_one("#download-cancel", Button).focus()
        self.refresh_bindings()

    def _show_error(self, text: str) -> None:
        self.query_one("#download-error", Static).update(visible(text))  # it may quote the hub
        self.set_class(bool(text), "-error")

    @work(thread=True, exclusive=True, group="download", exit_on_error=False)
    def _download(self, request: Request, cancel: threading.Event) -> None:
        hub = self.hub
        last_post = 0.0

        def on_progress(progress: Any) -> None:
            nonlocal last_post
            now = time.monotonic()
            if now - last_post >= PROGRESS_INTERVAL:
                last_post = now
                self.post_message(self.Progress(progress))

        if request.source == "modelscope":
            fetch, endpoint = hub.download_from_modelscope, self._settings.modelscope_endpoint
        else:
            fetch, endpoint = hub.download_model, self._settings.hf_endpoint
        try:
            path = fetch(
                request.repo_id,
                endpoint=endpoint,
                revision=request.revision,
                output_dir=request.output_dir,
                cache_dir=request.cache_dir,
                on_progress=on_progress,
                cancel=cancel,
            )
        except hub.DownloadError as exc:  # one line meant for the user, cancellation included
            self.post_message(self.Failed(str(exc)))
        except Exception as exc:  # an unexpected failure is still shown, not raised
            self.post_message(self.Failed(f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(self.Done(request, Path(path)))

    @on(Progress)
    def _on_progress(self, message: Progress) -> None:
        if not self.running:
            return
        progress = message.progress
        bar = self.query_one("#download-progress", ProgressBar)
        total = progress.total_bytes or None
        bar.update(total=total, progress=progress.downloaded_bytes if total else 0)
        self.query_one("#download-status", Static).update(visible(progress.text()))

    @on(Failed)
    def _on_failed(self, message: Failed) -> None:
        self.running = False
        self.query_one("#download-status", Static).update("")
        self._show_error(message.text)
        self.query_one("#download-progress", ProgressBar).update(total=100, progress=0)

    @on(Done)
    def _on_done(self, message: Done) -> None:
        self.running = False
        self.app.post_message(ModelDownloaded(message.request.repo_id, message.path))
        self.app.notify(
            visible(f"Downloaded {message.request.repo_id} to {message.path}"),
            title="Download finished",
            markup=False,
        )
        self.dismiss(None)
