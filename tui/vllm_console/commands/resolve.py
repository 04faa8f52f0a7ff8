"""`vllm-console resolve NAME`: where a name leads, by which rule, and every place tried."""

from __future__ import annotations

import json

from vllm_console.config import Settings
from vllm_console.core.catalog.resolve import Rule, resolve
from vllm_console.core.text import visible

HUB_NAMES = {"huggingface": "the Hugging Face hub", "modelscope": "ModelScope"}


def cmd_resolve(settings: Settings, name: str, *, as_json: bool) -> int:
    result = resolve(
        name,
        hf_cache=settings.hf_hub_cache,
        model_dirs=settings.model_dirs,
        cwd=settings.cwd,
        ms_cache=settings.modelscope_cache,
    )
    reason = result.reason
    answer = result.to_json()
    if result.rule is Rule.HUB:
        # Which hub vLLM would download from is the settings' choice, not the catalog's.
        hub = HUB_NAMES.get(settings.hub, settings.hub)
        reason = f"not on disk; vLLM would download it from {hub} (VLLM_CONSOLE_HUB)"
        answer.update(reason=reason, hub=settings.hub)
    if as_json:
        print(json.dumps(answer, indent=2))
    else:
        # The places tried are folders on disk, named by anyone who could write there.
        print(visible(f"{name} -> {result.target}"))
        print(visible(f"  rule:   {result.rule} ({reason})"))
        print("  tried:")
        for attempt in result.tried:
            print(visible(f"    [{attempt.rule}] {attempt.place}: {attempt.outcome}"))
    return 1 if result.rule is Rule.NOT_FOUND else 0
