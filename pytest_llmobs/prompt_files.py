"""Reading and validating prompt files (pydantic models, imported only when a file is read)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pytest_llmobs.prompts import PromptError

_UNION_BRANCHES = frozenset({"str", "list[ChatMessage]"})


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(min_length=1)
    content: str


class PromptFile(BaseModel):
    """The validated content of a prompt file."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "chat"] = "text"
    prompt: str | list[ChatMessage]
    config: dict[str, Any] = Field(default_factory=dict)
    labels: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    commit_message: str | None = None

    @field_validator("labels")
    @classmethod
    def _no_latest(cls, labels: list[str]) -> list[str]:
        if "latest" in labels:
            raise ValueError("'latest' is maintained automatically and cannot be set in a file")
        return labels

    def check_shape(self) -> None:
        if self.type == "text" and not isinstance(self.prompt, str):
            raise ValueError("a 'text' prompt needs 'prompt' to be a string")
        if self.type == "chat" and isinstance(self.prompt, str):
            raise ValueError("a 'chat' prompt needs 'prompt' to be a list of {role, content}")


def content_of(spec: PromptFile) -> dict[str, Any]:
    template: Any = (
        spec.prompt if isinstance(spec.prompt, str) else [m.model_dump() for m in spec.prompt]
    )
    return {"type": spec.type, "prompt": template, "config": spec.config}


def _read_prompt_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"{path}: cannot read prompt file ({exc})") from None
    suffix = path.suffix
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = _load_toml(text)
        else:
            data = _load_yaml(path, text)
    except json.JSONDecodeError as exc:
        raise PromptError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    except PromptError:
        raise
    except Exception as exc:
        raise PromptError(f"{path}: invalid {suffix.lstrip('.').upper()} ({exc})") from None
    if not isinstance(data, dict):
        raise PromptError(
            f"{path}: expected an object with 'type', 'prompt', 'config', 'labels'; "
            f"got {type(data).__name__}"
        )
    return data


def _load_toml(text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise PromptError(
                "reading .toml prompts on Python 3.10 needs tomli: pip install tomli"
            ) from None
    return tomllib.loads(text)


def _load_yaml(path: Path, text: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise PromptError(
            f"{path}: reading YAML prompts needs PyYAML: pip install pyyaml"
        ) from None
    return yaml.safe_load(text)


def parse_prompt_file(path: Path) -> PromptFile:
    """Read and validate one prompt file; errors name the file and the offending field."""
    data = _read_prompt_file(path)
    try:
        spec = PromptFile.model_validate(data)
        spec.check_shape()
    except ValidationError as exc:
        # 'prompt' is a union, which reports one error per branch: show the deepest one,
        # without the branch names pydantic puts in the location.
        first = max(exc.errors(), key=lambda error: len(error["loc"]))
        where = ".".join(str(p) for p in first["loc"] if p not in _UNION_BRANCHES) or "(file)"
        raise PromptError(f"{path}: {where}: {first['msg']}") from None
    except ValueError as exc:
        raise PromptError(f"{path}: {exc}") from None
    return spec
