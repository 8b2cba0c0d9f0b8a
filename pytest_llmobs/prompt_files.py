"""Reading and validating prompt files (pydantic models, imported only when a file is read)."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pytest_llmobs.dataset_files import json_problem, not_utf8
from pytest_llmobs.prompts import PromptError, malformed_placeholder
from pytest_llmobs.providers.base import CHAT_ROLES
from pytest_llmobs.serialize import has_lone_surrogate
from pytest_llmobs.strict_json import NotStrictJSON, loads

_UNION_BRANCHES = frozenset({"str", "list[ChatMessage]"})
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(min_length=1)
    content: str

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        if role not in CHAT_ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(CHAT_ROLES)}")
        return role


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
    def _valid_labels(cls, labels: list[str]) -> list[str]:
        if "latest" in labels:
            raise ValueError("'latest' is maintained automatically and cannot be set in a file")
        for label in labels:
            if not _LABEL.fullmatch(label):
                raise ValueError(
                    f"label {label!r} is not valid; expected letters, digits, '.', '_' or '-',"
                    " starting with a letter or digit"
                )
        twice = next((label for label in labels if labels.count(label) > 1), None)
        if twice is not None:
            raise ValueError(f"label {twice!r} is given twice")
        return labels

    def check_shape(self) -> None:
        if self.type == "text" and not isinstance(self.prompt, str):
            raise ValueError("a 'text' prompt needs 'prompt' to be a string")
        if self.type == "chat" and isinstance(self.prompt, str):
            raise ValueError("a 'chat' prompt needs 'prompt' to be a list of {role, content}")
        if self.type == "chat" and not self.prompt:
            raise ValueError("a 'chat' prompt needs at least one message in 'prompt'")
        texts = [self.prompt] if isinstance(self.prompt, str) else [m.content for m in self.prompt]
        for index, text in enumerate(texts):
            bad = malformed_placeholder(text)
            if bad is not None:
                where = "" if isinstance(self.prompt, str) else f" (message {index})"
                raise ValueError(
                    f"prompt: malformed placeholder {bad!r}{where}; expected {{{{name}}}} with"
                    " letters, digits, '_' or '.' inside"
                )


def content_of(spec: PromptFile) -> dict[str, Any]:
    template: Any = (
        spec.prompt if isinstance(spec.prompt, str) else [m.model_dump() for m in spec.prompt]
    )
    return {"type": spec.type, "prompt": template, "config": spec.config}


def _read_prompt_file(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PromptError(f"{path}: cannot read prompt file ({exc})") from None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise PromptError(not_utf8(path, data, exc)) from None
    suffix = path.suffix
    kind = suffix.lstrip(".").upper()
    try:
        if suffix == ".json":
            parsed = loads(text)
        elif suffix == ".toml":
            parsed = _load_toml(text)
        else:
            parsed = _load_yaml(path, text)
    except json.JSONDecodeError as exc:
        where = f"{path}:{exc.lineno}:{exc.colno}"
        raise PromptError(f"{where}: invalid JSON ({json_problem(exc)})") from None
    except NotStrictJSON as exc:
        raise PromptError(f"{path}: invalid {kind} ({exc})") from None
    except PromptError:
        raise
    except Exception as exc:
        mark = getattr(exc, "problem_mark", None)  # YAML errors: where, and what
        if mark is not None:
            problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
            raise PromptError(
                f"{path}:{mark.line + 1}:{mark.column + 1}: invalid {kind} ({problem})"
            ) from None
        detail = " ".join(str(exc).split())
        raise PromptError(f"{path}: invalid {kind} ({detail})") from None
    if not isinstance(parsed, dict):
        raise PromptError(
            f"{path}: expected an object with 'type', 'prompt', 'config', 'labels'; "
            f"got {type(parsed).__name__}"
        )
    unstorable = _not_json(parsed)
    if unstorable is not None:
        raise PromptError(f"{path}: {unstorable}")
    return parsed


_JSON_SCALARS = (str, int, float, bool, type(None))


def _not_json(value: object, path: str = "") -> str | None:
    """What keeps ``value`` (read from a prompt file) from being stored as JSON, at its dotted
    path: a NaN or infinite float, a value JSON has no type for (a TOML or YAML date), or a
    string holding half of a surrogate pair (a ``\\ud83d`` escape), which UTF-8 cannot."""
    where = path or "(file)"
    if isinstance(value, str) and has_lone_surrogate(value):
        return (
            f"{where}: a \\u escape gives half of a UTF-16 surrogate pair in {value[:60]!r}; "
            "write the character itself, or both halves of the pair"
        )
    if isinstance(value, float) and not math.isfinite(value):
        return (
            f"{where} is not a finite number; JSON has no NaN or Infinity, so the stored"
            " version could not be read back by other tools"
        )
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    elif isinstance(value, _JSON_SCALARS):
        return None
    else:
        return (
            f"{where} is a {type(value).__name__} ({str(value)[:40]}); JSON has no such type, "
            "so the prompt could not be stored: quote it to make it a string"
        )
    for key, item in items:
        found = _not_json(key, f"{path} (a key)" if path else "(a key)")
        if found is not None:
            return found
        found = _not_json(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


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

    class UniqueKeyLoader(yaml.SafeLoader):  # type: ignore[misc]
        """PyYAML's safe loader, refusing a key given twice (it would keep the last)."""

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    line = key_node.start_mark.line + 1
                    raise NotStrictJSON(
                        f"key {key!r} appears twice in one mapping (line {line}); all but the"
                        " last is lost"
                    )
                seen.add(key)
            mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
            return mapping

    return yaml.load(text, Loader=UniqueKeyLoader)


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
        message = first["msg"].removeprefix("Value error, ")  # our validators' own messages
        raise PromptError(f"{path}: {where}: {message}") from None
    except ValueError as exc:
        raise PromptError(f"{path}: {exc}") from None
    return spec
