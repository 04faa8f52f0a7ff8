"""The prompts of a benchmark: random ones of an exact length, or a ShareGPT file's.

Random prompts are token ids drawn from the server's own tokenizer (`/tokenize` of a seed
text), so each is exactly `input_len` tokens, as vLLM's random dataset makes them. A server
without `/tokenize` (not vLLM) gets text of `input_len` words instead, which is about as
many tokens: the step's input token count is the server's, from its usage answers.

A ShareGPT file is untrusted JSON: a list of `{"conversations": [{"from", "value"}...]}`;
the first human turn of each is a prompt, anything else is skipped.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import httpx

from vllm_console.core.endpoint.capped import MAX_BODY_BYTES
from vllm_console.core.endpoint.client import server_root
from vllm_console.core.files import read_capped

SEED_TEXT = (
    "The quick brown fox jumps over the lazy dog while seven wizards quietly hex jumbo "
    "plums; measured results, counted tokens and steady servers make honest benchmarks. "
)
WORDS = SEED_TEXT.split()
MAX_DATASET_BYTES = 2 << 30
MAX_TOKEN_ID = 1 << 24

Prompt = str | list[int]


class DatasetError(Exception):
    """A dataset file that cannot be used; the message says why."""


async def token_pool(
    client: httpx.AsyncClient, base_url: str, model: str, api_key: str | None
) -> list[int]:
    """Token ids of the seed text in the server's tokenizer; [] when it cannot say."""
    body = {"model": model, "prompt": SEED_TEXT * 4, "add_special_tokens": False}
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    url = f"{server_root(base_url)}/tokenize"
    data: Any = None
    try:
        async with client.stream("POST", url, json=body, headers=headers, timeout=10) as r:
            raw = b""
            async for chunk in r.aiter_bytes():
                raw += chunk
                if len(raw) > MAX_BODY_BYTES:
                    return []
            data = json.loads(raw) if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, RecursionError):
        return []
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(tokens, list):
        return []
    return [t for t in tokens if type(t) is int and 0 <= t < MAX_TOKEN_ID]


def random_prompts(n: int, input_len: int, pool: list[int], seed: int = 0) -> list[Prompt]:
    rng = random.Random(seed)
    if pool:
        return [rng.choices(pool, k=input_len) for _ in range(n)]
    return [" ".join(rng.choices(WORDS, k=input_len)) for _ in range(n)]


def sharegpt_prompts(data: Any, n: int) -> list[Prompt]:
    """The first human turn of each conversation, up to `n`."""
    found: list[Prompt] = []
    for item in data if isinstance(data, list) else []:
        turns = item.get("conversations") if isinstance(item, dict) else None
        for turn in turns if isinstance(turns, list) else []:
            if isinstance(turn, dict) and turn.get("from") in ("human", "user"):
                value = turn.get("value")
                if isinstance(value, str) and value.strip():
                    found.append(value)
                break
        if len(found) >= n:
            break
    return found


def load_sharegpt(path: Path, n: int) -> list[Prompt]:
    try:
        raw = read_capped(path, MAX_DATASET_BYTES)
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise DatasetError(f"{path} is not JSON") from None
    prompts = sharegpt_prompts(data, n)
    if not prompts:
        raise DatasetError(f"{path} holds no ShareGPT conversations with a human turn")
    return prompts
