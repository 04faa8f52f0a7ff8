"""Secrets of a launch: the API key kept off the command line, and hidden wherever it shows.

vLLM reads its API key from `--api-key` or from `VLLM_API_KEY` in its environment. A command
line is public (every local user reads it in `ps` and /proc/PID/cmdline), an environment is
not (/proc/PID/environ is the owner's), so a launch always passes the key in the environment.
A key typed into the extra arguments is taken out of them (`split_api_key`) and passed the
same way; it wins over the settings' key, as vLLM's `--api-key` wins over `VLLM_API_KEY`.
`VLLM_API_KEY` holds one key, so more than one on the command line is refused.

Where the key could still show (the server's log, the run archive, a copied command), it is
replaced by `***`. Every non-empty key is redacted, however short: a key of a few characters
also hides every other occurrence of those characters in the log, which is the price of never
showing it (a key that short protects little anyway).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

REDACTED = "***"
API_KEY_ENV = "VLLM_API_KEY"
SECRET_ENV_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
API_KEY_FLAG = "--api-key"
# argparse accepts any unambiguous prefix of a long option, and vLLM's parser also takes
# underscores for dashes; `--api-` alone is ambiguous (`--api-server-count`).
SHORTEST_PREFIX = len("--api-k")


class ApiKeyError(ValueError):
    """An `--api-key` in the extra arguments that cannot be moved to the environment."""


def is_api_key_flag(arg: str) -> bool:
    """`--api-key`, `--api_key`, `--api-k`... as vLLM's parser would take it (no `=value`)."""
    name = arg.replace("_", "-")
    return len(name) >= SHORTEST_PREFIX and API_KEY_FLAG.startswith(name)


def split_api_key(args: Sequence[str]) -> tuple[list[str], str | None]:
    """The arguments without any `--api-key`, and the key they gave (None: none).

    `--api-key K`, `--api-key=K` and vLLM's list form `--api-key K1 K2` are understood; more
    than one distinct key, or the flag without a value, is an `ApiKeyError`.
    """
    rest: list[str] = []
    keys: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name.startswith("--") and is_api_key_flag(name):
            if eq:
                given = [value]
                i += 1
            else:
                j = i + 1
                while j < len(args) and not args[j].startswith("-"):
                    j += 1
                given, i = list(args[i + 1 : j]), j
            if not any(given):
                raise ApiKeyError("--api-key needs a value")
            keys += [key for key in given if key]
            continue
        rest.append(arg)
        i += 1
    distinct = sorted(set(keys))
    if len(distinct) > 1:
        raise ApiKeyError(
            f"one API key only: vLLM reads it from {API_KEY_ENV}, which holds one "
            "(on the command line every local user would see it)"
        )
    return rest, (distinct[0] if distinct else None)


def is_secret_name(name: str) -> bool:
    return any(word in name.upper() for word in SECRET_ENV_WORDS)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """The argv with the value of any `--api-key` (and its prefixes) replaced by `***`."""
    out: list[str] = []
    hiding = False
    for arg in argv:
        name, eq, _value = arg.partition("=")
        if name.startswith("--") and is_api_key_flag(name):
            out.append(f"{name}={REDACTED}" if eq else arg)
            hiding = not eq
        elif hiding and not arg.startswith("-"):
            out.append(REDACTED)
        else:
            hiding = False
            out.append(arg)
    return out


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if is_secret_name(k) else v) for k, v in env.items()}


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced by `***` (longest first, so a key
    that contains another is hidden whole)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text
