"""The launch dialog: the spec's fields, and the exact command and environment, live.

Nothing starts before the user presses Launch. The preview is what the launch will run
(secrets redacted); it can be copied to the clipboard or saved as a runnable script. Bad
fields are marked and named, and Launch stays disabled until they are fixed. vLLM is looked
for in a thread (that probes an interpreter), and the port is checked before dismissing.
Under the fields, whether the spec fits the GPUs it would see, updated as fields change and
as the GPU strip samples, and any leftover vLLM process holding GPU memory (ctrl+g kills it).

Beside the console's other servers (a `FleetContext`): the server gets a name of its own
(the served model name, made unique), the GPUs checked (tensor parallel follows their count
until the user sets it), the port asked for or, when that one is busy, the next free one
(looked for in a thread, and said), and the fit counts what the others hold on its GPUs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Footer, Input, Label, Static

from vllm_console.config import Settings
from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.fleet.model import FleetContext
from vllm_console.core.gpu.nvml import GpuSnapshot
from vllm_console.core.serve.install import VllmCommand, find_vllm
from vllm_console.core.serve.ports import PortChoice, choose_port
from vllm_console.core.serve.proctable import port_holders, port_is_free
from vllm_console.core.serve.spec import LaunchRequest, LaunchSpec, save_spec, serve_args
from vllm_console.core.text import visible, visible_lines
from vllm_console.screens import launch_form as form
from vllm_console.screens.launch_gpu import GpuFitView
from vllm_console.screens.launch_pick import GpuPicker
from vllm_console.widgets.worker_errors import ReportsWorkerErrors


class LaunchScreen(ReportsWorkerErrors, ModalScreen[LaunchRequest | None]):
    """Fields on the left of each row, the command preview below; dismisses with a request."""

    DEFAULT_CSS = Path(__file__).with_name("launch.tcss").read_text(encoding="utf-8")

    BINDINGS = [
        Binding(
            "escape",
            "cancel",
            "Cancel",
            id="launch.cancel",
            tooltip="Close the dialog without launching",
        ),
        Binding(
            "ctrl+l",
            "launch",
            "Launch",
            id="launch.go",
            tooltip="Check the fields and launch vLLM with them",
        ),
        Binding(
            "ctrl+y",
            "copy",
            "Copy command",
            id="launch.copy",
            tooltip="Copy the command line and its environment (the API key redacted)",
        ),
        Binding(
            "ctrl+s",
            "save_script",
            "Save script",
            id="launch.save",
            tooltip="Save the command and its environment as a shell script at the path shown",
        ),
        Binding(
            "ctrl+g",
            "kill_leftovers",
            "Kill leftovers",
            id="launch.kill",
            tooltip="Kill the vLLM processes of earlier runs that still hold GPU memory",
        ),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        model_key: str,
        model_id: str,
        spec: LaunchSpec,
        changed: str | None = None,
        entry: ModelEntry | None = None,
        gpus: Callable[[], GpuSnapshot | None] | None = None,
        kill: Callable[[list[int]], None] | None = None,
        fleet: FleetContext | None = None,
    ) -> None:
        """`entry` and `gpus` (the latest GPU snapshot) give the fit; `kill` kills leftovers;
        `fleet` is what the console's other servers have (names, ports, GPU memory)."""
        super().__init__()
        self._fleet = fleet or FleetContext()
        self._chosen = spec.gpus
        self._port: PortChoice | None = None
        # Tensor parallel and the name follow the GPUs and the served name until edited.
        self._tp_edited = changed == "tensor_parallel_size" or spec.tensor_parallel_size != (
            form.tensor_parallel_for(spec.gpus, str(spec.pipeline_parallel_size))
        )
        self._name_edited = False
        self._entry, self._gpus, self._kill = entry, gpus, kill
        self._settings = settings
        self._model_key, self._model_id = model_key, model_id
        self._base = spec
        self._changed = changed
        self._vllm: VllmCommand | None = None
        self.spec: LaunchSpec | None = spec
        self.errors: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        values = form.form_values(self._base)
        with Vertical(id="launch-dialog"):
            # The model's id and path are folder names: shown, never obeyed.
            title = Content.assemble(("Launch ", "bold"), visible(self._model_id))
            yield Static(title, id="launch-title")
            yield Static(
                Content("\n".join(map(visible, form.model_line(self._base).split("\n")))),
                id="launch-model",
            )
            if self._changed:
                label = form.LABELS.get(self._changed, self._changed)
                yield Static(f"Changed as the diagnosis suggests: {label}", id="launch-changed")
            with VerticalScroll(id="launch-body"):
                with Grid(id="launch-fields"):
                    served, names = self._base.served_model_name, self._fleet.names
                    values["name"] = form.default_name(served, self._model_id, names)
                    for field in (form.NAME, *form.TEXT_FIELDS):
                        yield Label(field.label, classes="launch-label")
                        yield self._input(field, str(values[field.name]))
                yield Static("", id="launch-port-note", classes="launch-note")
                with Horizontal(id="launch-switches"):
                    for field in form.SWITCHES:
                        yield Checkbox(
                            field.label, bool(values[field.name]), id=f"field-{field.name}"
                        )
                if self._settings.api_key:
                    yield Static("API key: *** (from VLLM_API_KEY)", classes="launch-note")
                yield Static("", id="launch-errors")
                yield GpuPicker(self._chosen, id="launch-gpus")
                yield GpuFitView(id="launch-gpu")
                yield Static("Looking for vLLM…", id="launch-preview")
                with Horizontal(id="launch-script-row"):
                    yield Label("Script", classes="launch-label")
                    script = form.script_path(self._settings, self._model_id)
                    yield Input(str(script), id="launch-script-path")
            with Horizontal(id="launch-buttons"):
                yield Button("Copy command", id="launch-copy")
                yield Button("Save script", id="launch-save")
                yield Button("Cancel", id="launch-cancel")
                yield Button("Launch", id="launch-go", variant="primary", disabled=True)
        yield Footer()

    def _input(self, field: form.Field, value: str) -> Input:
        """A field's input, silent about its first value: any change heard is then the
        user's (see `_field_changed`); one `_refresh` on mount reads the first values."""
        with self.prevent(Input.Changed):
            return Input(
                value,
                placeholder=field.placeholder,
                id=f"field-{field.name}",
                classes="-changed" if field.name == self._changed else "",
            )

    def on_mount(self) -> None:
        self.query_one(f"#field-{self._changed or 'served_model_name'}").focus()
        self._refresh()
        self._find_vllm()
        self._choose_port(self._base.host, self._base.port)
        self._show_gpu()
        self.set_interval(1.0, self._show_gpu, name="launch-gpu")

    @work(thread=True, exclusive=True, group="find-vllm", exit_on_error=False)
    def _find_vllm(self) -> None:
        found = find_vllm(self._settings.vllm_command)
        self.app.call_from_thread(self._vllm_found, found)

    def _vllm_found(self, vllm: VllmCommand) -> None:
        self._vllm = vllm
        self._refresh()

    @work(thread=True, exclusive=True, group="choose-port", exit_on_error=False)
    def _choose_port(self, host: str, port: int) -> None:
        choice = choose_port(host, port, self._fleet.ports)  # who holds it: a walk of /proc
        self.app.call_from_thread(self._port_chosen, choice)

    def _port_chosen(self, choice: PortChoice) -> None:
        """The next free port in the field, unless the user has typed another meanwhile."""
        self._port = choice
        field = self.query_one("#field-port", Input)
        if choice.port is not None and field.value == str(choice.wanted):
            field.value = str(choice.port)
        self._refresh()

    # -- the form -------------------------------------------------------------------------

    def _values(self) -> dict[str, str | bool]:
        values: dict[str, str | bool] = {}
        for field in form.TEXT_FIELDS:
            values[field.name] = self.query_one(f"#field-{field.name}", Input).value
        for field in form.SWITCHES:
            values[field.name] = self.query_one(f"#field-{field.name}", Checkbox).value
        return values

    def _refresh(self) -> None:
        spec, errors = form.read_form(replace(self._base, gpus=self._chosen), self._values())
        errors.update(form.fleet_problems(spec, self._server_name(), self._fleet))
        self.spec, self.errors = (None if errors else spec), errors
        for field in (form.NAME, *form.TEXT_FIELDS):
            widget = self.query_one(f"#field-{field.name}", Input)
            widget.set_class(field.name in self.errors, "-invalid")
        self._show_errors()
        self._show_port_note()
        self._show_gpu()
        preview = self.query_one("#launch-preview", Static)
        problem = form.vllm_problem(self._vllm) if self._vllm else None
        if self._vllm is None:
            preview.update("Looking for vLLM…")
        elif problem:
            why = visible(problem)
            preview.update(Content.assemble(("vLLM cannot be run: ", "bold $text-error"), why))
        elif self.spec is not None:
            shown = form.preview(self._vllm, self.spec, self._settings)
            preview.update(Content(visible_lines(shown.script.split("\n", 2)[2])))
        preview.set_class(bool(problem), "-problem")
        ok = self.spec is not None and self._vllm is not None and problem is None
        self.query_one("#launch-go", Button).disabled = not ok
        for name in ("#launch-copy", "#launch-save"):
            self.query_one(name, Button).disabled = not ok

    def _server_name(self) -> str:
        return self.query_one("#field-name", Input).value.strip()

    def _show_port_note(self) -> None:
        """Why the port moved, while the field holds the port it moved to."""
        note, choice = self.query_one("#launch-port-note", Static), self._port
        said = f"Port {choice.note()}" if choice and choice.moved else ""
        moved_to = str(choice.port or choice.wanted) if choice else ""
        note.update(Content(visible(said)))  # a process's name: shown, never obeyed
        note.display = bool(said) and self.query_one("#field-port", Input).value == moved_to

    def _show_gpu(self) -> None:
        snapshot = self._gpus() if self._gpus is not None else None
        picker = self.query_one("#launch-gpus", GpuPicker)
        picker.show(snapshot)
        picker.display = self._gpus is not None
        view = self.query_one("#launch-gpu", GpuFitView)
        had = bool(view.leftovers)
        view.show(self._entry, self.spec, snapshot, os.environ, self._fleet.held)
        view.display = self._gpus is not None
        if bool(view.leftovers) != had:
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "kill_leftovers":
            views = list(self.query("#launch-gpu").results(GpuFitView))
            leftovers = views[0].leftovers if views else []
            return self._kill is not None and any(h.pid is not None for h in leftovers)
        return True

    @work(exclusive=True, group="kill-leftovers", exit_on_error=False)
    async def action_kill_leftovers(self) -> None:
        from vllm_console.screens.gpu_holders import GpuHoldersScreen

        leftovers = self.query_one("#launch-gpu", GpuFitView).leftovers
        if self._kill is None or not leftovers:
            return
        title = "vLLM processes from earlier runs hold GPU memory"
        screen = GpuHoldersScreen(title, leftovers, "Not started by this console's server.")
        if await self.app.push_screen_wait(screen):
            self._kill(screen.pids)

    def _show_errors(self) -> None:
        # Messages quote what was typed and which process holds the port.
        lines = [visible(f"{form.LABELS[name]}: {msg}") for name, msg in self.errors.items()]
        errors = self.query_one("#launch-errors", Static)
        errors.update(Content("\n".join(lines)))
        errors.display = bool(lines)

    @on(Input.Changed)
    def _field_changed(self, event: Input.Changed) -> None:
        field = event.input.id
        if field == "launch-script-path":
            return
        if field == "field-tensor_parallel_size":  # only the user's: ours are prevented
            self._tp_edited = True
        elif field == "field-name":
            self._name_edited = True
        elif field == "field-served_model_name" and not self._name_edited:
            served = event.value.strip() or None
            name = self.query_one("#field-name", Input)
            with name.prevent(Input.Changed):
                name.value = form.default_name(served, self._model_id, self._fleet.names)
        elif field == "field-pipeline_parallel_size":
            self._follow_gpus()
        self._refresh()

    @on(GpuPicker.Changed)
    def _gpus_changed(self, event: GpuPicker.Changed) -> None:
        self._chosen = event.chosen
        self._follow_gpus()
        self._refresh()

    def _follow_gpus(self) -> None:
        """Tensor parallel follows the count of checked GPUs until the user sets it."""
        if self._tp_edited:
            return
        stages = self.query_one("#field-pipeline_parallel_size", Input).value
        tp = self.query_one("#field-tensor_parallel_size", Input)
        with tp.prevent(Input.Changed):
            tp.value = str(form.tensor_parallel_for(self._chosen, stages))

    @on(Checkbox.Changed)
    def _switch_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id == "field-safe_mode" and event.value:
            self._apply_safe_mode()
        self._refresh()

    def _apply_safe_mode(self) -> None:
        """Show what safe mode changes: the fields take its values, visibly."""
        safe = replace(self._base, safe_mode=True).with_safe_mode()
        values = form.form_values(safe)
        for name in ("gpu_memory_utilization", "max_model_len"):
            self.query_one(f"#field-{name}", Input).value = str(values[name])
        self.query_one("#field-enforce_eager", Checkbox).value = True

    # -- actions --------------------------------------------------------------------------

    @on(Button.Pressed, "#launch-go")
    def action_launch(self) -> None:
        if not self.query_one("#launch-go", Button).disabled:
            self._check_and_launch()

    @work(exclusive=True, group="launch-check", exit_on_error=False)
    async def _check_and_launch(self) -> None:
        spec, vllm = self.spec, self._vllm
        if spec is None or vllm is None:
            return
        if not await asyncio.to_thread(port_is_free, spec.host, spec.port):
            holders = await asyncio.to_thread(port_holders, spec.port)
            who = ", ".join(p.describe() for p in holders) or "another process"
            self.errors = {"port": f"port {spec.port} is taken by {who}"}
            self.query_one("#field-port", Input).add_class("-invalid")
            self._show_errors()
            return
        argv = tuple(vllm.argv(serve_args(spec)))
        try:
            await asyncio.to_thread(save_spec, self._settings.specs_file, self._model_key, spec)
        except OSError as exc:
            failed = visible(f"Could not save the launch settings: {exc}")
            self.notify(failed, severity="warning", markup=False)
        key, model_id, name = self._model_key, self._model_id, self._server_name()
        self.dismiss(LaunchRequest(key, model_id, spec.model, spec, argv, name))

    def _script(self) -> str | None:
        if self.spec is None or self._vllm is None or not self._vllm.found:
            return None
        return form.preview(self._vllm, self.spec, self._settings).script

    @on(Button.Pressed, "#launch-copy")
    def action_copy(self) -> None:
        script = self._script()
        if script is not None:
            self.app.copy_to_clipboard(script)
            self.notify("Command and environment copied (API key redacted).")

    @on(Button.Pressed, "#launch-save")
    def action_save_script(self) -> None:
        script = self._script()
        if script is not None:
            path = Path(self.query_one("#launch-script-path", Input).value)
            self._write_script(path, script)

    @work(thread=True, exclusive=True, group="save-script", exit_on_error=False)
    def _write_script(self, path: Path, script: str) -> None:
        try:
            form.write_script(path, script, self._settings)
        except OSError as exc:
            failed = visible(str(exc))
            self.app.call_from_thread(self.notify, failed, severity="error", markup=False)
            return
        saved = visible(f"Script saved to {path}")
        self.app.call_from_thread(self.notify, saved, markup=False)

    @on(Button.Pressed, "#launch-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
