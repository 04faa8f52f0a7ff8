"""`vllm-console gpus`: the picture in text and JSON, with and without a GPU, once and watching."""

from __future__ import annotations

import io
import json
import os

import pytest

from tests.fakes import fake_nvml
from tests.fakes.fake_nvml import FakeDevice, FakeNvml, FakeProc
from vllm_console.commands.gpus import bar, cmd_gpus
from vllm_console.config import Settings
from vllm_console.core.gpu.nvml import GpuState, Sampler

GiB = 1 << 30


def machine() -> FakeNvml:
    me = os.getpid()
    return FakeNvml(
        [
            FakeDevice(
                used=20 * GiB,
                util_gpu=45,
                util_memory=12,
                temperature=54,
                power_mw=210_000,
                processes=[FakeProc(me, 18 * GiB), FakeProc(4_000_000, None)],
            ),
            FakeDevice(
                name="NVIDIA T4",
                total=15 * GiB,
                used=0,
                unsupported={
                    "nvmlDeviceGetPowerUsage",
                    "nvmlDeviceGetComputeRunningProcesses",
                    "nvmlDeviceGetGraphicsRunningProcesses",
                },
            ),
        ]
    )


def run(settings: Settings, nv: FakeNvml, **kw: object) -> tuple[int, str]:
    out = io.StringIO()
    options: dict[str, object] = {"as_json": False, "watch": False, "interval": 0.5, **kw}
    code = cmd_gpus(settings, nvml=nv, out=out, **options)  # type: ignore[arg-type]
    return code, out.getvalue()


def test_text_picture(settings: Settings) -> None:
    code, text = run(settings, machine())
    assert code == 0
    assert "driver 550.54.15, 2 GPU(s)" in text
    assert "GPU 0  NVIDIA H100 80GB HBM3" in text
    assert "[########----------------------]  20.0 GiB / 80.0 GiB  (25%)" in text
    assert "util 45%   mem util 12%   temp 54 C   power 210 / 700 W" in text
    assert "18.0 GiB" in text and "(not visible here)" in text and "N/A" in text
    assert "power N/A / 700 W" in text and "processes: N/A" in text


def test_no_driver_is_not_a_failure(settings: Settings) -> None:
    nv = FakeNvml(init_error=fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    code, text = run(settings, nv)
    assert code == 0 and text.startswith("No GPU: no NVIDIA driver")
    assert "NVML Shared Library Not Found" in text
    code, out = run(settings, nv, as_json=True)
    data = json.loads(out)
    assert code == 0 and data["available"] is False and data["gpus"] == []
    assert "NVML Shared Library Not Found" in data["reason"]


def test_this_machine(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code = cmd_gpus(settings, as_json=True, watch=False, interval=0.5)
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and isinstance(data["available"], bool) and data["reason"]


def test_json_picture(settings: Settings) -> None:
    code, out = run(settings, machine(), as_json=True)
    data = json.loads(out)
    assert code == 0 and data["available"] is True and data["state"] == "ok"
    first, second = data["gpus"]
    assert first["memory"] == {"total": 80 * GiB, "used": 20 * GiB, "free": 60 * GiB}
    assert first["power_w"] == 210.0 and first["processes"][1]["used_memory"] is None
    assert second["power_w"] is None and second["processes"] is None


def test_broken_nvml_exits_1(settings: Settings) -> None:
    nv = FakeNvml(init_error=fake_nvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH)
    code, text = run(settings, nv)
    assert code == 1 and "version mismatch" in text


def test_watch_prints_frames_as_json_lines(settings: Settings) -> None:
    nv = machine()
    code, out = run(settings, nv, as_json=True, watch=True, interval=0.25, frames=2)
    frames = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(frames) == 2 and nv.initialised == 0
    assert all(f["available"] for f in frames)


def test_watch_ends_quietly_on_ctrl_c(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("vllm_console.commands.gpus.time.sleep", interrupt)
    nv = machine()
    code, text = run(settings, nv, watch=True)
    assert code == 0 and text.count("driver 550.54.15") == 1 and nv.initialised == 0


def test_watch_without_a_driver_says_so_once(settings: Settings) -> None:
    nv = FakeNvml(init_error=fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED)
    code, text = run(settings, nv, watch=True)
    assert code == 0 and "Driver Not Loaded" in text


def test_bar() -> None:
    assert bar(0.5, 10) == "[#####-----]"
    assert bar(None, 4) == "[????]"
    assert bar(1.0, 4) == "[####]"


def test_the_sampler_state_values_are_stable() -> None:
    # the JSON's "state" is part of the command's output: keep the spelling
    assert [str(s) for s in GpuState] == ["ok", "no-driver", "no-gpu", "error"]
    assert Sampler(FakeNvml()).sample_once().to_json()["state"] == "no-gpu"
