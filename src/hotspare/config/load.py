"""Read a node's TOML configuration and report every problem by field path."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hotspare.config import timing
from hotspare.config.models import NodeConfig, token_problem


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
        elif item["type"] == timing.ERROR_TYPE:
            lines.append(f"  {_relation_message(item['loc'], item.get('ctx') or {})}")
            continue
        lines.append(f"  {location}: {message}")
    return "\n".join(lines)


def _relation_message(loc: tuple[int | str, ...], ctx: dict[str, Any]) -> str:
    """A broken timing relation names each of its fields by full path, with its value."""
    prefix = "".join(f"{part}." for part in loc)
    shown = [f"{prefix}{name} ({value:g})" for name, value in zip(ctx["fields"], ctx["values"],
                                                                    strict=True)]
    return str(ctx["template"]).format(*shown)


def read_config_text(path: Path, what: str, usual_name: str) -> str:
    """The file's text, or one line naming the file and what to do: an operator who passed a
    folder or the wrong file should not have to read a traceback to find out."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such {what} file") from exc
    except IsADirectoryError as exc:
        inside = path / usual_name
        hint = f" ({inside})" if inside.is_file() else f" (usually {usual_name})"
        raise ConfigError(f"{path}: is a folder; pass the {what} file itself{hint}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (byte {exc.start} is not UTF-8); pass the "
                          f"{what} file, TOML text such as {usual_name}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} file: "
                          f"{exc.strerror or type(exc).__name__}") from exc


def load_node_config(path: Path) -> NodeConfig:
    """Parse and validate; relative `data_dir` and `token_file` resolve against its folder."""
    text = read_config_text(path, "node configuration", "node.toml")
    try:
        raw = tomllib.loads(text)
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
    config = config.model_copy(update=updates) if updates else config
    if config.api.token_file is not None:
        _check_token_file(path, config.api.token_file)
    return config


def _check_token_file(source: Path, token_file: Path) -> None:
    """Read now, as the node will at start, so a missing or weak token stops `config check` with
    the field's name instead of a traceback at start or a node answering 500 to everything."""
    where = f"{source}: api.token_file ({token_file})"
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file; write the site token there (the same on "
                          "every node of the site), or set `token` instead") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not a text file; it must hold the token as one line of "
                          "text") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read: "
                          f"{exc.strerror or type(exc).__name__}") from None
    problem = token_problem(token)
    if problem is not None:
        raise ConfigError(f"{where}: {problem}")
