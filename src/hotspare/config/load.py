"""Read a node's TOML configuration and report every problem by field path."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from hotspare.config.models import NodeConfig


class ConfigError(Exception):
    """A configuration the node refuses to start with; the message names each bad field."""


def describe_validation_error(
    source: str, error: ValidationError, docs: str = "docs/configuration.md"
) -> str:
    """`docs` names the page that lists the valid fields, so the operator knows where to look."""
    lines = [f"{source}: {error.error_count()} problem(s):"]
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = f"unknown field (check its spelling; see {docs})"
        elif item["type"] == "missing":
            message = "required field is missing"
        lines.append(f"  {location}: {message}")
    return "\n".join(lines)


def load_node_config(path: Path) -> NodeConfig:
    """Parse and validate; relative `data_dir` and `token_file` resolve against its folder."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such configuration file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        config = NodeConfig.model_validate(raw, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(str(path), exc)) from exc
    base = path.parent
    updates: dict[str, object] = {}
    if not config.data_dir.is_absolute():
        updates["data_dir"] = (base / config.data_dir).resolve()
    if config.api.token_file is not None and not config.api.token_file.is_absolute():
        updates["api"] = config.api.model_copy(
            update={"token_file": (base / config.api.token_file).resolve()}
        )
    return config.model_copy(update=updates) if updates else config
