"""The hub setting (VLLM_CONSOLE_HUB) where it shows outside the download: the settings
themselves, the launch environment, `resolve`'s answer, `doctor`, and the diagnosis."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from tests.fakes.fake_modelscope import FakeModelScope, MsRepo
from tests.fakes.net import free_port

from vllm_console.commands.doctor import check_hubs
from vllm_console.commands.resolve import cmd_resolve
from vllm_console.config import ConfigError, Settings, load_settings
from vllm_console.core.serve.diagnose import diagnose
from vllm_console.core.serve.spec import LaunchSpec, launch_env
from vllm_console.core.serve.supervisor import HUB_STALL


def test_settings_read_the_hub_and_modelscope_site(tmp_path: Path) -> None:
    plain = load_settings(environ={}, cwd=tmp_path, home=tmp_path)
    assert (plain.hub, plain.modelscope_endpoint) == ("huggingface", None)
    assert plain.modelscope_cache == tmp_path / ".cache" / "modelscope"
    env = {"VLLM_CONSOLE_HUB": "ModelScope", "MODELSCOPE_DOMAIN": "mirror.example.cn"}
    chosen = load_settings(environ=env, cwd=tmp_path, home=tmp_path)
    assert (chosen.hub, chosen.modelscope_endpoint) == ("modelscope", "https://mirror.example.cn")
    both = {**env, "MODELSCOPE_ENDPOINT": "http://127.0.0.1:9/"}
    assert load_settings(environ=both, cwd=tmp_path).modelscope_endpoint == "http://127.0.0.1:9"
    with pytest.raises(ConfigError, match="expected huggingface or modelscope"):
        load_settings(environ={"VLLM_CONSOLE_HUB": "hf"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="MODELSCOPE_DOMAIN"):
        load_settings(environ={"MODELSCOPE_DOMAIN": "ftp://x"}, cwd=tmp_path)


def test_a_hub_id_launched_with_modelscope_asks_vllm_to_use_it() -> None:
    hub_id = LaunchSpec(model="Qwen/Qwen2.5-0.5B", model_is_local=False)
    assert "VLLM_USE_MODELSCOPE" not in launch_env(hub_id, hf_endpoint=None)
    env = launch_env(hub_id, hf_endpoint=None, hub="modelscope")
    assert env["VLLM_USE_MODELSCOPE"] == "True" and "HF_HUB_OFFLINE" not in env
    site = launch_env(
        hub_id, hf_endpoint=None, hub="modelscope", modelscope_endpoint="https://ms.example"
    )
    assert (site["MODELSCOPE_ENDPOINT"], site["MODELSCOPE_DOMAIN"]) == (
        "https://ms.example",
        "ms.example",  # older SDKs put https:// in front themselves
    )


def test_a_local_folder_stays_offline_whatever_the_hub() -> None:
    local = LaunchSpec(model="/models/modelscope/models/Qwen--Qwen2.5-0.5B/snapshots/master")
    env = launch_env(local, hf_endpoint=None, hub="modelscope", modelscope_endpoint="https://x")
    assert env["HF_HUB_OFFLINE"] == "1"
    assert not {"VLLM_USE_MODELSCOPE", "MODELSCOPE_ENDPOINT"} & set(env)


def test_resolve_names_the_hub_that_would_download(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cmd_resolve(settings, "Org/Nowhere", as_json=False) == 0
    assert "would download it from the Hugging Face hub" in capsys.readouterr().out
    chosen = replace(settings, hub="modelscope")
    assert cmd_resolve(chosen, "Org/Nowhere", as_json=True) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["rule"], answer["hub"], answer["needs_download"]) == ("hub", "modelscope", True)
    assert answer["reason"].endswith("from ModelScope (VLLM_CONSOLE_HUB)")


def test_doctor_says_which_hub_is_configured_and_which_answer(settings: Settings) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with FakeModelScope([MsRepo("Org/Name", {"master": {}})]) as site:
        ms = replace(
            settings, hub="modelscope", hf_endpoint=dead, modelscope_endpoint_override=site.url
        )
        configured, hf, modelscope = check_hubs(ms)
    assert configured.ok and configured.detail.startswith(
        "modelscope (VLLM_CONSOLE_HUB from default)"
    )
    assert modelscope.ok and modelscope.detail.startswith(site.url)
    assert hf.ok and hf.detail.startswith("not reachable, not the configured hub")
    _, hf, _ = check_hubs(replace(ms, hub="huggingface"))
    assert not hf.ok and "VLLM_CONSOLE_HUB=modelscope" in hf.fix


def test_hub_diagnoses_name_modelscope_as_the_other_way() -> None:
    (finding,) = diagnose(["OSError: We couldn't connect to 'https://huggingface.co' to load"])
    assert "HF_ENDPOINT" in finding.hint
    assert "VLLM_CONSOLE_HUB=modelscope" in finding.hint
    assert "VLLM_USE_MODELSCOPE=True" in finding.hint
    assert "VLLM_CONSOLE_HUB=modelscope" in HUB_STALL.hint
