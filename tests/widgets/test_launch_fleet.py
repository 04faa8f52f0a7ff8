"""The launch dialog beside other servers: GPUs to check, a name and a port of its own, and a
fit that counts what the others hold."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.widgets import Button, Checkbox, Input, Static

from tests.core.test_fit import entry_for
from tests.fakes.fake_nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeDevice, FakeNvml
from tests.fakes.net import free_port
from tests.widgets.console_helpers import fake_settings, wait_until
from vllm_console.core.fleet.model import FleetContext
from vllm_console.core.gpu.nvml import GpuSnapshot, Sampler
from vllm_console.core.serve.spec import LaunchRequest, launch_env, load_saved_specs
from vllm_console.screens import launch_form as form
from vllm_console.screens.launch import LaunchScreen
from vllm_console.screens.launch_gpu import GpuFitView

GiB = 1 << 30
MODEL = "qwen2.5-7b-instruct"
TWO_GPUS = (
    FakeDevice(used=1 * GiB),
    FakeDevice(name="NVIDIA A100-SXM4-40GB", uuid="GPU-1", total=40 * GiB, used=10 * GiB),
)


@pytest.fixture(autouse=True)
def _no_inherited_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def snapshot_of(*devices: FakeDevice) -> GpuSnapshot:
    return Sampler(FakeNvml(list(devices))).sample_once()


class Host(App[None]):
    def __init__(self, screen: LaunchScreen) -> None:
        super().__init__()
        self.dialog = screen
        self.answers: list[LaunchRequest | None] = []

    def on_mount(self) -> None:
        self.push_screen(self.dialog, self.answers.append)


def dialog(
    tmp_path: Path,
    snapshot: GpuSnapshot | Callable[[], GpuSnapshot | None] | None,
    fleet: FleetContext | None = None,
    **spec_changes: Any,
) -> LaunchScreen:
    settings = fake_settings(tmp_path)
    entry = entry_for(MODEL)
    spec = form.initial_spec(settings, str(entry.path), entry.id, None)
    return LaunchScreen(
        settings,
        model_key=entry.key,
        model_id=entry.id,
        spec=replace(spec, **spec_changes),
        entry=entry,
        gpus=snapshot if callable(snapshot) else lambda: snapshot,
        fleet=fleet,
    )


async def ready(pilot: Any, screen: LaunchScreen) -> None:
    """vLLM (the stand-in) found and the port checked: the preview shows the command."""
    preview = screen.query_one("#launch-preview", Static)
    await wait_until(pilot, lambda: "exec " in str(preview.render()), 10, "the preview")
    await wait_until(pilot, lambda: screen._port is not None, 5, "the port check")


async def launch(pilot: Any, host: Host) -> LaunchRequest:
    await pilot.press("ctrl+l")
    await wait_until(pilot, lambda: host.answers, 5, "the request")
    request = host.answers[0]
    assert request is not None
    return request


def field(screen: LaunchScreen, name: str) -> Input:
    return screen.query_one(f"#field-{name}", Input)


def box(screen: LaunchScreen, index: int) -> Checkbox:
    return screen.query_one(f"#gpu-pick-{index}", Checkbox)


def note(screen: LaunchScreen, id: str) -> str:
    return str(screen.query_one(f"#{id}", Static).render())


def test_the_form_helpers_for_a_fleet(tmp_path: Path) -> None:
    assert form.default_name(None, "Qwen/Qwen2.5-7B-Instruct", ()) == "Qwen2.5-7B-Instruct"
    assert form.default_name("chat model", "org/m", {"chat-model"}) == "chat-model-2"
    assert form.name_problem("ok.name_1-2", {"other"}) is None
    assert form.name_problem("a" * 65, ()) == "letters, digits, '.', '_' and '-' only, at most 64"
    fleet = FleetContext(names=frozenset({"a"}), ports=frozenset({8000}))
    assert form.fleet_problems(None, "a", fleet) == {
        "name": "another server has this name: e.g. a-2"
    }
    spec = form.initial_spec(fake_settings(tmp_path), "/m", "org/m", None)
    assert set(form.fleet_problems(replace(spec, port=8000), "b", fleet)) == {"port"}
    for gpus, stages, tp in (
        (None, "1", 1),
        ((0, 1, 2, 3), "1", 4),
        ((0, 1, 2, 3), "2", 2),
        ((0,), "2", 1),
        ((0, 1), "", 2),
        ((0, 1), "x", 2),
        ((0, 1), "0", 2),
        ((0, 1), "²", 2),
    ):
        assert form.tensor_parallel_for(gpus, stages) == tp, (gpus, stages)


async def test_labels_show_the_name_not_obeyed_and_follow_the_free_memory(
    tmp_path: Path,
) -> None:
    odd = FakeDevice(name="[bold red]GPU[/]\x1b[2J\n", uuid="GPU-9")
    state = {"snap": snapshot_of(odd)}
    screen = dialog(tmp_path, lambda: state["snap"])
    async with Host(screen).run_test(size=(120, 50)) as pilot:
        await wait_until(pilot, lambda: screen.query("#gpu-pick-0"), 5, "the box")
        label = str(box(screen, 0).label)
        assert label.startswith("0 · 79.0 GiB free · [bold red]GPU[/]") and "\x1b" not in label
        assert "\n" not in label
        state["snap"] = snapshot_of(replace(odd, used=30 * GiB))  # the strip samples again
        await wait_until(pilot, lambda: "50.0 GiB free" in str(box(screen, 0).label), 3)


async def test_two_checked_gpus_set_tensor_parallel_and_cuda_visible_devices(
    tmp_path: Path,
) -> None:
    screen = dialog(tmp_path, snapshot_of(*TWO_GPUS))
    host = Host(screen)
    async with host.run_test(size=(120, 50)) as pilot:
        await ready(pilot, screen)
        assert str(box(screen, 0).label) == "0 · 79.0 GiB free · H100 80GB HBM3"
        assert str(box(screen, 1).label) == "1 · 30.0 GiB free · A100-SXM4-40GB"
        assert note(screen, "gpu-pick-note") == "none checked: the server inherits its GPUs"
        assert field(screen, "tensor_parallel_size").value == "1"
        box(screen, 0).value = True
        await pilot.pause()
        assert screen.spec is not None and screen.spec.gpus == (0,)
        box(screen, 1).value = True
        await pilot.pause()
        assert field(screen, "tensor_parallel_size").value == "2"
        assert note(screen, "gpu-pick-note") == "checked: CUDA_VISIBLE_DEVICES=0,1"
        view = screen.query_one("#launch-gpu", GpuFitView)
        assert view.fit is not None and view.fit.gpus == (0, 1)  # judged on the checked two
        request = await launch(pilot, host)
    assert request.spec.gpus == (0, 1) and request.spec.tensor_parallel_size == 2
    assert "--tensor-parallel-size" in request.argv
    assert launch_env(request.spec, hf_endpoint=None)["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert load_saved_specs(screen._settings.specs_file)[entry_for(MODEL).key].gpus == (0, 1)


async def test_tensor_parallel_follows_the_gpus_until_the_user_sets_it(tmp_path: Path) -> None:
    screen = dialog(tmp_path, snapshot_of(*TWO_GPUS))
    async with Host(screen).run_test(size=(120, 50)) as pilot:
        await ready(pilot, screen)
        tp = field(screen, "tensor_parallel_size")
        field(screen, "pipeline_parallel_size").value = "2"
        box(screen, 0).value = True
        box(screen, 1).value = True
        await pilot.pause()
        assert tp.value == "1"  # two GPUs over two pipeline stages
        field(screen, "pipeline_parallel_size").value = "1"
        await pilot.pause()
        assert tp.value == "2"
        tp.value = "4"  # the user's own
        await pilot.pause()
        box(screen, 1).value = False
        await pilot.pause()
        assert tp.value == "4" and screen.spec is not None and screen.spec.gpus == (0,)


async def test_gpus_a_saved_spec_names_that_are_gone_are_dropped(tmp_path: Path) -> None:
    screen = dialog(tmp_path, snapshot_of(*TWO_GPUS), gpus=(1, 5), tensor_parallel_size=2)
    async with Host(screen).run_test(size=(120, 50)) as pilot:
        await ready(pilot, screen)
        await wait_until(pilot, lambda: screen.spec is not None and screen.spec.gpus == (1,))
        assert box(screen, 1).value and not box(screen, 0).value
        assert field(screen, "tensor_parallel_size").value == "1"


async def test_without_a_gpu_the_choice_says_so_and_the_launch_works(tmp_path: Path) -> None:
    none = Sampler(FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND)).sample_once()
    screen = dialog(tmp_path, none)
    host = Host(screen)
    async with host.run_test(size=(120, 50)) as pilot:
        await ready(pilot, screen)
        said = note(screen, "gpu-pick-note")
        assert said.startswith("none to choose: no NVIDIA driver")
        assert said.endswith("The server inherits its GPUs.")
        assert not screen.query("#gpu-pick-boxes Checkbox")
        request = await launch(pilot, host)
    assert request.spec.gpus is None
    assert "CUDA_VISIBLE_DEVICES" not in launch_env(request.spec, hf_endpoint=None)


async def test_without_gpu_readings_the_choice_is_hidden(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    spec = form.initial_spec(settings, "/m", "org/m", None)
    screen = LaunchScreen(settings, model_key="k", model_id="org/m", spec=spec)
    async with Host(screen).run_test(size=(120, 50)) as pilot:
        await pilot.pause()
        assert not screen.query_one("#launch-gpus").display


async def test_the_name_is_the_served_name_made_unique_and_checked(tmp_path: Path) -> None:
    fleet = FleetContext(names=frozenset({MODEL, "chat"}))
    screen = dialog(tmp_path, snapshot_of(*TWO_GPUS), fleet)
    host = Host(screen)
    async with host.run_test(size=(120, 50)) as pilot:
        await ready(pilot, screen)
        name, go = field(screen, "name"), screen.query_one("#launch-go", Button)
        assert name.value == f"{MODEL}-2"
        served = field(screen, "served_model_name")
        for typed in ("c", "ch", "cha", "chat"):  # typed fast: the name follows, unique
            served.value = typed
        await pilot.pause()
        assert name.value == "chat-2"
        served.value = "chatty"
        await pilot.pause()
        assert name.value == "chatty"
        for typed, said in (
            (MODEL, "another server has this name: e.g. qwen2.5-7b-instruct-2"),
            ("", "a name for this server"),
            ("my server", "letters, digits, '.', '_' and '-' only"),
        ):
            name.value = typed
            await pilot.pause()
            assert screen.errors["name"].startswith(said) and name.has_class("-invalid")
            assert go.disabled and "Server name: " in note(screen, "launch-errors")
        name.value = "mine"
        await pilot.pause()
        assert not go.disabled and "name" not in screen.errors
        field(screen, "served_model_name").value = "other"  # typed: the name stays
        await pilot.pause()
        assert name.value == "mine"
        request = await launch(pilot, host)
    assert request.name == "mine" and request.server_name == "mine"
    assert request.spec.served_model_name == "other"


async def test_a_busy_port_moves_to_the_next_free_one_before_launch(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        screen = dialog(tmp_path, snapshot_of(*TWO_GPUS), port=busy)
        host = Host(screen)
        async with host.run_test(size=(120, 50)) as pilot:
            await ready(pilot, screen)
            port = field(screen, "port")
            assert int(port.value) > busy
            said = note(screen, "launch-port-note")
            assert said.startswith(f"Port {busy} is busy (") and f"/{os.getpid()}" in said
            assert said.endswith(f"): using {port.value}")
            request = await launch(pilot, host)
        assert request.spec.port == int(port.value)


async def test_another_servers_port_is_skipped_and_refused(tmp_path: Path) -> None:
    settings_port = free_port()  # nothing listens: the other server is still starting
    fleet = FleetContext(ports=frozenset({settings_port}))
    screen = dialog(tmp_path, snapshot_of(*TWO_GPUS), fleet, port=settings_port)
    async with Host(screen).run_test(size=(120, 50)) as pilot:
        await ready(pilot, screen)
        port = field(screen, "port")
        assert port.value != str(settings_port)
        said = note(screen, "launch-port-note")
        assert said == (
            f"Port {settings_port} is busy (another server of this console): using {port.value}"
        )
        port.value = str(settings_port)  # typed back: refused at the field, the note gone
        await pilot.pause()
        assert screen.errors["port"] == (
            f"port {settings_port} belongs to another server of this console"
        )
        assert not screen.query_one("#launch-port-note").display
        assert screen.query_one("#launch-go", Button).disabled


async def test_an_overlap_that_will_not_fit_is_warned_in_the_fit_line(tmp_path: Path) -> None:
    gpus = snapshot_of(FakeDevice(used=1 * GiB), FakeDevice(uuid="GPU-1", used=1 * GiB))
    fleet = FleetContext(held={1: 40 * GiB})  # a server starting on GPU 1 will hold 40 GiB
    screen = dialog(tmp_path, gpus, fleet, gpu_memory_utilization=0.9)
    async with Host(screen).run_test(size=(120, 50)) as pilot:
        await ready(pilot, screen)
        view = screen.query_one("#launch-gpu", GpuFitView)
        assert view.overlaps == [] and "-wont-fit" not in view.classes  # GPU 0 is free
        box(screen, 1).value = True
        await pilot.pause()
        shown = str(view.render()).splitlines()
        assert shown[0].startswith("Fit: won't fit — utilization 0.90 asks for 72.0 GiB")
        assert shown[1] == (
            "⚠ shared GPU 1: other servers hold 40.0 GiB, this launch takes 72.0 GiB: "
            "32.0 GiB missing"
        )
        assert "-wont-fit" in view.classes
        field(screen, "gpu_memory_utilization").value = "0.45"  # 36 GiB fits beside it
        await pilot.pause()
        assert view.overlaps == [] and "⚠ shared" not in str(view.render())
