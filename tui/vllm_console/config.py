"""Settings: defaults < .env < process environment < command line, validated once.

`load_settings` is called once by the CLI; everything else receives the frozen `Settings`.
Nothing here reads the environment at import time. A bad value raises `ConfigError`, which
names the key, the value and where it came from, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from vllm_console.env_file import EnvFileError as EnvFileError
from vllm_console.env_file import parse_env_file as parse_env_file

DEFAULT_MODEL_DIRS = (
    "./models",
    "~/models",
    "~/autodl-tmp/models",
    "/root/models",
    "/root/autodl-tmp/models",
)


class ConfigError(Exception):
    """One bad setting: which key, what value, from where, and what was expected."""

    def __init__(self, key: str, value: str, origin: str, reason: str) -> None:
        self.key, self.value, self.origin, self.reason = key, value, origin, reason
        super().__init__(f"{key}={value!r} (from {origin}): {reason}")


def _parse_str(raw: str) -> str | None:
    return raw or None


def _parse_url(raw: str) -> str | None:
    if not raw:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("expected an http:// or https:// URL")
    return raw.rstrip("/")


HUBS = ("huggingface", "modelscope")


def _parse_hub(raw: str) -> str:
    if raw.lower() not in HUBS:
        raise ValueError("expected huggingface or modelscope")
    return raw.lower()


def _parse_domain(raw: str) -> str | None:
    """ModelScope's MODELSCOPE_DOMAIN: a host (the SDK puts https:// in front) or a URL."""
    if not raw or "://" in raw:
        return _parse_url(raw)
    return _parse_url(f"https://{raw}")


def _parse_port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise ValueError("expected a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise ValueError("expected a port number (1-65535)")
    return port


def _parse_utilization(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a fraction of GPU memory between 0 and 1, e.g. 0.9") from None
    if not 0 < value <= 1:
        raise ValueError("expected a fraction of GPU memory between 0 and 1, e.g. 0.9")
    return value


def _parse_optional_positive_int(raw: str) -> int | None:
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("expected a whole number of tokens, e.g. 4096") from None
    if value <= 0:
        raise ValueError("expected a whole number of tokens, e.g. 4096")
    return value


MAX_MODEL_LEN_LIMIT = 10**8  # beyond any model's context: a typo, not a setting


def _parse_max_model_len(raw: str) -> int | None:
    value = _parse_optional_positive_int(raw)
    if value is not None and value > MAX_MODEL_LEN_LIMIT:
        raise ValueError(f"expected at most {MAX_MODEL_LEN_LIMIT:,} tokens: no model has more")
    return value


def _parse_host(raw: str) -> str:
    if not raw or raw != raw.strip() or any(ch.isspace() or not ch.isprintable() for ch in raw):
        raise ValueError("expected a host name or address without spaces, e.g. 127.0.0.1")
    return raw


def _parse_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds, e.g. 15") from None
    if not 0 < value <= 3600:
        raise ValueError("expected a number of seconds between 0 and 3600")
    return value


def _expand(raw: str) -> Path:
    """`~` and `~user` expanded; a user that does not exist is a bad value, not a crash
    (pathlib raises RuntimeError for it)."""
    try:
        return Path(raw).expanduser()
    except RuntimeError:
        raise ValueError(f"{raw.split('/', 1)[0]}: no such user to expand") from None


def _parse_path(raw: str) -> Path | None:
    return _expand(raw) if raw else None


def _parse_dirs(raw: str) -> tuple[Path, ...]:
    return tuple(_expand(part) for part in raw.split(":") if part.strip())


@dataclass(frozen=True)
class Key:
    name: str
    attr: str
    parse: Callable[[str], Any]
    default: str
    doc: str


KEYS: tuple[Key, ...] = (
    Key(
        "VLLM_BASE_URL",
        "base_url",
        _parse_url,
        "http://localhost:8000/v1",
        "OpenAI-compatible endpoint the chat pane talks to",
    ),
    Key(
        "VLLM_MODEL",
        "model",
        _parse_str,
        "",
        "model name clients send; also the default served model name",
    ),
    Key("VLLM_API_KEY", "api_key", _parse_str, "", "API key for the endpoint (and for launches)"),
    Key(
        "HF_ENDPOINT",
        "hf_endpoint",
        _parse_url,
        "",
        "Hugging Face hub or mirror used for downloads, e.g. https://hf-mirror.com",
    ),
    Key(
        "VLLM_CONSOLE_HUB",
        "hub",
        _parse_hub,
        "huggingface",
        "hub that downloads and launches of Org/Name ids use: huggingface or modelscope",
    ),
    Key(
        "MODELSCOPE_ENDPOINT",
        "modelscope_endpoint_override",
        _parse_url,
        "",
        "ModelScope site used for downloads (default https://www.modelscope.cn)",
    ),
    Key(
        "MODELSCOPE_DOMAIN",
        "modelscope_domain",
        _parse_domain,
        "",
        "ModelScope host, as older ModelScope SDKs read it (MODELSCOPE_ENDPOINT wins)",
    ),
    Key(
        "MODELSCOPE_CACHE",
        "modelscope_cache_override",
        _parse_path,
        "",
        "ModelScope cache (default ~/.cache/modelscope)",
    ),
    Key("HF_HOME", "hf_home", _parse_path, "", "Hugging Face home; the cache is HF_HOME/hub"),
    Key(
        "HF_HUB_CACHE",
        "hf_hub_cache_override",
        _parse_path,
        "",
        "Hugging Face hub cache (default ~/.cache/huggingface/hub)",
    ),
    Key(
        "VLLM_CONSOLE_MODEL_DIRS",
        "extra_model_dirs",
        _parse_dirs,
        "",
        "extra model folders to scan, separated by ':'",
    ),
    Key("VLLM_CONSOLE_HOST", "host", _parse_host, "127.0.0.1", "host a launched server listens on"),
    Key("VLLM_CONSOLE_PORT", "port", _parse_port, "8000", "port a launched server listens on"),
    Key(
        "VLLM_CONSOLE_GPU_MEMORY_UTILIZATION",
        "gpu_memory_utilization",
        _parse_utilization,
        "0.9",
        "fraction of GPU memory vLLM may use (0-1]",
    ),
    Key(
        "VLLM_CONSOLE_MAX_MODEL_LEN",
        "max_model_len",
        _parse_max_model_len,
        "",
        "max model length for launches (empty: the model's own)",
    ),
    Key(
        "VLLM_CONSOLE_VLLM",
        "vllm_command",
        _parse_str,
        "",
        "command that runs vLLM, e.g. /opt/vllm-env/bin/vllm (empty: find it)",
    ),
    Key(
        "VLLM_CONSOLE_STOP_TIMEOUT",
        "stop_timeout",
        _parse_seconds,
        "15",
        "seconds a stopping server gets before it is killed",
    ),
    Key(
        "VLLM_CONSOLE_STALL_TIMEOUT",
        "stall_timeout",
        _parse_seconds,
        "60",
        "seconds without progress before a launch is diagnosed as stalled",
    ),
)

KEYS_BY_NAME = {key.name: key for key in KEYS}


@dataclass(frozen=True)
class Settings:
    base_url: str = "http://localhost:8000/v1"
    model: str | None = None
    api_key: str | None = None
    hf_endpoint: str | None = None
    hub: str = "huggingface"
    modelscope_endpoint_override: str | None = None
    modelscope_domain: str | None = None
    modelscope_cache_override: Path | None = None
    hf_home: Path | None = None
    hf_hub_cache_override: Path | None = None
    extra_model_dirs: tuple[Path, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    vllm_command: str | None = None
    stop_timeout: float = 15.0
    stall_timeout: float = 60.0
    home: Path = field(default_factory=Path.home)
    cwd: Path = field(default_factory=Path.cwd)
    state_dir: Path | None = None
    config_dir: Path | None = None
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def hf_hub_cache(self) -> Path:
        home = self.hf_home or self.home / ".cache" / "huggingface"
        return self.hf_hub_cache_override or home / "hub"

    @property
    def modelscope_endpoint(self) -> str | None:
        """The ModelScope site the user chose, or None for the SDK's default."""
        return self.modelscope_endpoint_override or self.modelscope_domain

    @property
    def modelscope_cache(self) -> Path:
        """The root the ModelScope SDK caches under (its `models/` is inside)."""
        return self.modelscope_cache_override or self.home / ".cache" / "modelscope"

    @property
    def model_dirs(self) -> tuple[Path, ...]:
        """The folders scanned for models, in resolution order, without duplicates."""
        seen: list[Path] = []
        for raw in (*DEFAULT_MODEL_DIRS, *map(str, self.extra_model_dirs)):
            if raw.startswith("~"):
                path = self.home / raw[2:]
            else:
                path = Path(raw)
                if not path.is_absolute():
                    path = self.cwd / path
            if path not in seen:
                seen.append(path)
        return tuple(seen)

    @property
    def runs_dir(self) -> Path:
        return (self.state_dir or self.home / ".local" / "state" / "vllm-console") / "runs"

    @property
    def specs_file(self) -> Path:
        return (self.config_dir or self.home / ".config" / "vllm-console") / "launch-specs.json"

    def origin(self, key: str) -> str:
        return self.origins.get(key, "default")


def load_settings(
    *,
    environ: Mapping[str, str],
    cli: Mapping[str, str | None] | None = None,
    env_file: Path | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> Settings:
    """Build Settings from the layers, later ones winning.

    `env_file` None means `.env` in `cwd` if it exists; an explicit path must exist.
    `cli` maps key names (as in KEYS) to the raw strings given on the command line.
    """
    cwd = cwd or Path.cwd()
    home = home or Path(environ.get("HOME") or Path.home())
    # Each layer: how to name where a key came from, and the values.
    layers: list[tuple[Callable[[str], str], Mapping[str, str]]] = []
    if env_file is None:
        candidate = cwd / ".env"
        if candidate.exists():
            found = parse_env_file(candidate)
            layers.append((found.origin, found.values))
    else:
        if not env_file.exists():
            raise ConfigError("--env-file", str(env_file), "command line", "no such file")
        found = parse_env_file(env_file)
        layers.append((found.origin, found.values))
    layers.append((lambda _key: "environment", environ))
    if cli:
        given = {k: v for k, v in cli.items() if v is not None}
        layers.append((lambda _key: "command line", given))

    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key in KEYS:
        raw, origin = key.default, "default"
        for name_origin, layer in layers:
            if key.name in layer:
                raw, origin = layer[key.name], name_origin(key.name)
        try:
            values[key.attr] = key.parse(raw if key.parse is _parse_host else raw.strip())
        except ValueError as exc:
            raise ConfigError(key.name, raw, origin, str(exc)) from None
        origins[key.name] = origin
    state = environ.get("XDG_STATE_HOME")
    config = environ.get("XDG_CONFIG_HOME")
    return Settings(
        **values,
        home=home,
        cwd=cwd,
        state_dir=Path(state) / "vllm-console" if state else None,
        config_dir=Path(config) / "vllm-console" if config else None,
        origins=origins,
    )


def settings_from_process(
    cli: Mapping[str, str | None] | None = None, env_file: Path | None = None
) -> Settings:
    return load_settings(environ=os.environ, cli=cli, env_file=env_file)


def env_example() -> str:
    """The text of .env.example: every key, commented, with its default."""
    lines = ["# vllm-console settings. Precedence: defaults < .env < environment < flags.", ""]
    for key in KEYS:
        lines += [f"# {key.doc}", f"# {key.name}={key.default}", ""]
    return "\n".join(lines)
