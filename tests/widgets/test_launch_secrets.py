"""The launch form with an API key: a key typed into the extra args is moved to the spec's key
(so it reaches vLLM through VLLM_API_KEY and the chat knows it); the preview never shows it."""

from __future__ import annotations

from pathlib import Path

from vllm_console.config import Settings
from vllm_console.core.serve.install import VllmCommand
from vllm_console.core.serve.spec import LaunchSpec
from vllm_console.screens import launch_form as form

VLLM = VllmCommand(("/env/bin/vllm", "serve"), "test", distribution="vllm")
SETTINGS = Settings(home=Path("/home/you"), api_key="sk-settings")


def values(extra: str) -> dict[str, str | bool]:
    base = form.form_values(form.initial_spec(SETTINGS, "/m", "org/m", None))
    return {**base, "extra_args": extra}


def test_a_typed_key_moves_to_the_environment_and_the_preview_hides_it() -> None:
    base = form.initial_spec(SETTINGS, "/m", "org/m", None)
    spec, errors = form.read_form(base, values("--seed 1 --api-key sk-typed"))
    assert errors == {} and spec is not None
    assert spec.api_key == "sk-typed" and spec.extra_args == "--seed 1"
    shown = form.preview(VLLM, spec, SETTINGS)
    assert "sk-typed" not in " ".join(shown.argv) and shown.env["VLLM_API_KEY"] == "sk-typed"
    assert "sk-typed" not in shown.script and "VLLM_API_KEY=***" in shown.script


def test_two_typed_keys_are_a_field_error() -> None:
    base = LaunchSpec(model="/m")
    spec, errors = form.read_form(base, values("--api-key a --api-key b"))
    assert spec is None and "one API key only" in errors["extra_args"]
