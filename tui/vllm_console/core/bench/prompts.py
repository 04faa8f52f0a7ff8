"""The prompts of a benchmark: random ones of an exact length, or a ShareGPT file's.

Random prompts are made as vLLM's random dataset makes them, through the server's own
tokenizer (`/tokenize`, `/detokenize`): `input_len` minus the special tokens the tokenizer
adds (a BOS) random token ids, decoded to text, encoded again and cut or topped up until the
text is that many tokens (ten tries, as vLLM's). The prompt sent is that text, and the server
adds its special tokens: it counts `input_len` tokens, as it does for `vllm bench serve`. A
server without those endpoints (not vLLM) gets text of `input_len` words instead, which is
about as many tokens: the step's input token count is the server's, from its usage answers.

A ShareGPT file is untrusted JSON: a list of `{"conversations": [{"from", "value"}...]}`;
the first human turn of each is a prompt, anything else is skipped.
"""

from __future__ import annotations

import asyncio
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
RETRIES = 10  # vLLM's max_retry
IN_FLIGHT = 8  # tokenizer calls at a time while the prompts are made

Prompt = str | list[int]


class DatasetError(Exception):
    """A dataset file that cannot be used; the message says why."""


class ServerTokenizer:
    """The served model's tokenizer, through the server's `/tokenize` and `/detokenize`."""

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, model: str, api_key: str | None
    ) -> None:
        self._client = client
        self._root = server_root(base_url)
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        try:
            async with self._client.stream(
                "POST", self._root + path, json=body, headers=self._headers, timeout=10
            ) as r:
                raw = b""
                async for chunk in r.aiter_bytes():
                    raw += chunk
                    if len(raw) > MAX_BODY_BYTES:
                        return None
                data = json.loads(raw) if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None

    async def encode(self, text: str, special: bool = False) -> list[int] | None:
        body = {"model": self._model, "prompt": text, "add_special_tokens": special}
        data = await self._post("/tokenize", body)
        tokens = data.get("tokens") if data is not None else None
        if not isinstance(tokens, list):
            return None
        return [t for t in tokens if type(t) is int and 0 <= t < MAX_TOKEN_ID]

    async def decode(self, tokens: list[int]) -> str | None:
        data = await self._post("/detokenize", {"model": self._model, "tokens": tokens})
        text = data.get("prompt") if data is not None else None
        return text if isinstance(text, str) else None


async def random_prompts(
    tokenizer: ServerTokenizer | None, n: int, input_len: int, seed: int = 0
) -> tuple[list[Prompt], bool]:
    """`n` prompts of `input_len` tokens as the server counts them, and True; or prompts of
    words, and False, without a tokenizer (or when the server's cannot decode)."""
    rng = random.Random(seed)
    if tokenizer is not None:
        pool = await tokenizer.encode(SEED_TEXT * 4)
        with_special = await tokenizer.encode(SEED_TEXT * 4, special=True)
        if pool and with_special is not None:
            target = max(input_len - max(len(with_special) - len(pool), 0), 1)
            made = await _decoded(tokenizer, rng, pool, n, target)
            if made is not None:
                return made, True
    return [" ".join(rng.choices(WORDS, k=input_len)) for _ in range(n)], False


async def _decoded(
    tokenizer: ServerTokenizer, rng: random.Random, pool: list[int], n: int, target: int
) -> list[Prompt] | None:
    """Texts of `target` tokens each (vLLM's `gen_prompt_decode_to_target_len`), made a few
    at a time; None when the server cannot decode."""
    sequences = [rng.choices(pool, k=target) for _ in range(n)]

    async def one(tokens: list[int]) -> str | None:
        text = None
        for _ in range(RETRIES + 1):
            text = await tokenizer.decode(tokens)
            again = None if text is None else await tokenizer.encode(text)
            if text is None or again is None:
                return None
            if len(again) == target:
                break
            tokens = again[:target] + rng.choices(pool, k=max(target - len(again), 0))
        return text

    made: list[Prompt] = []
    for start in range(0, n, IN_FLIGHT):
        texts = await asyncio.gather(*(one(s) for s in sequences[start : start + IN_FLIGHT]))
        if any(t is None for t in texts):
            return None
        made += [t for t in texts if t is not None]
    return made


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
