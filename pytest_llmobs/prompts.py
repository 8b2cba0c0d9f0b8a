"""Prompt files, immutable versions and labels, and compiling ``{{variables}}``.

A prompt file ``prompts/<name>.json`` (or ``.toml``; ``.yaml``/``.yml`` with PyYAML) holds
Langfuse's prompt shape::

    {"type": "text" | "chat", "prompt": "..." | [{"role": ..., "content": ...}],
     "config": {...}, "labels": ["production"]}

The file is the current content. The store numbers contents as they appear: new content under
the same name becomes the next version, and a version never changes once assigned. Labels in the
file move to the file's version; ``latest`` always names the newest version.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pytest_llmobs.redaction import PLACEHOLDER
from pytest_llmobs.store import Store

BUILTIN_PROMPTS_DIR = Path(__file__).parent / "rubrics"
"""Prompts that ship with the plugin (the ``judge/*`` rubrics); the prompts dir overrides them."""
PROMPT_SUFFIXES = (".json", ".toml", ".yaml", ".yml")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


def malformed_placeholder(text: str) -> str | None:
    """The first ``{{`` in ``text`` that does not open a ``{{name}}`` placeholder (shown with
    what follows, up to its ``}}``), else None.

    >>> malformed_placeholder("Hi {{name}}, {{user-name}}!")
    '{{user-name}}'
    """
    start = text.find("{{")
    while start != -1:
        match = PLACEHOLDER.match(text, start)
        if match is None:
            end = text.find("}}", start + 2)
            opened_again = text.find("{{", start + 2)
            if end == -1 or (opened_again != -1 and opened_again < end):  # never closed
                stop = start + 30 if opened_again == -1 else min(opened_again, start + 30)
                return text[start:stop].split("\n", 1)[0]
            return text[start : end + 2][:60]
        start = text.find("{{", match.end())
    return None


class PromptError(ValueError):
    """A prompt file is missing or malformed, or a version/label does not exist."""


def check_prompt_name(name: object) -> str:
    """``name`` if it is a prompt's one name: its file's path under the prompts directory,
    without suffix, ``/`` between folders; else a `PromptError` (a name spelled two ways would
    give one file two version histories)."""
    if not isinstance(name, str):
        raise PromptError(
            f"invalid prompt name {name!r}; expected a string such as 'support-agent' or "
            "'team/support-agent'"
        )
    canonical = "/".join(part for part in name.split("/") if part not in ("", "."))
    if canonical != name and _NAME.fullmatch(canonical) and ".." not in canonical:
        raise PromptError(
            f"invalid prompt name {name!r}; write it {canonical!r}, the one name of its file"
        )
    if not _NAME.fullmatch(name) or ".." in name:
        raise PromptError(
            f"invalid prompt name {name!r}; expected letters, digits, '.', '_', '-' and '/' "
            "between folders (no '..'), starting with a letter or digit"
        )
    return name


class PromptVariableError(PromptError, KeyError):
    """Compiling a prompt lacked a variable its template uses, or was given ``None`` for one."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


def content_hash(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Prompt:
    """One immutable prompt version."""

    name: str
    version: int
    type: Literal["text", "chat"]
    template: str | list[dict[str, str]]
    config: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    hash: str = ""

    @property
    def variables(self) -> list[str]:
        """The variable names the template uses, in order of first appearance."""
        texts = (
            [self.template]
            if isinstance(self.template, str)
            else [m["content"] for m in self.template]
        )
        seen: dict[str, None] = {}
        for text in texts:
            for match in PLACEHOLDER.finditer(text):
                seen.setdefault(match.group(1), None)
        return list(seen)

    def compile(self, **variables: Any) -> CompiledPrompt:
        """Fill ``{{variables}}``; a variable the template uses but was not given, and a ``None``
        value (it would read "None"), are errors. Others are ignored, as Langfuse's ``compile``
        does, so one dict of variables can serve several prompts."""
        known = self.variables
        missing = [v for v in known if v not in variables]
        if missing:
            given = ", ".join(sorted(variables)) or "(none)"
            names = ", ".join(map(repr, missing))
            raise PromptVariableError(
                f"prompt {self.name!r} version {self.version} is missing variable"
                f"{'s' if len(missing) > 1 else ''} {names}; given: {given}"
            )
        empty = [v for v in known if variables[v] is None]
        if empty:
            raise PromptVariableError(
                f"prompt {self.name!r} version {self.version}: variable {empty[0]!r} is None;"
                " pass text (a missing value would be filled in as 'None')"
            )

        def fill(text: str) -> str:
            return PLACEHOLDER.sub(lambda m: str(variables[m.group(1)]), text)

        if isinstance(self.template, str):
            return CompiledPrompt(self, text=fill(self.template), variables=variables)
        messages = [{**m, "content": fill(m["content"])} for m in self.template]
        return CompiledPrompt(self, messages=messages, variables=variables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "type": self.type,
            "prompt": self.template,
            "config": self.config,
            "labels": list(self.labels),
            "hash": self.hash,
        }


class CompiledPrompt:
    """A prompt with its variables filled; remembers the exact version it came from."""

    __slots__ = ("_messages", "_text", "prompt", "variables")

    def __init__(
        self,
        prompt: Prompt,
        *,
        text: str | None = None,
        messages: list[dict[str, str]] | None = None,
        variables: dict[str, Any] | None = None,
    ) -> None:
        self.prompt = prompt
        self._text = text
        self._messages = messages
        self.variables = dict(variables or {})

    @property
    def name(self) -> str:
        return self.prompt.name

    @property
    def version(self) -> int:
        return self.prompt.version

    @property
    def config(self) -> dict[str, Any]:
        return self.prompt.config

    @property
    def messages(self) -> list[dict[str, str]]:
        """Chat messages (a text prompt becomes one user message)."""
        if self._messages is not None:
            return [dict(m) for m in self._messages]
        return [{"role": "user", "content": self._text or ""}]

    @property
    def text(self) -> str:
        """The compiled text (chat messages joined as ``role: content`` lines)."""
        if self._text is not None:
            return self._text
        return "\n".join(f"{m['role']}: {m['content']}" for m in self._messages or [])

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"CompiledPrompt({self.name!r}, version={self.version})"


class PromptRegistry:
    """Resolves prompt names to versions from the prompts directory and the store."""

    def __init__(
        self, directory: Path, store: Store, *, builtin: Path | None = BUILTIN_PROMPTS_DIR
    ) -> None:
        self.directory = directory
        self.builtin = builtin
        self._store = store
        self._current: dict[str, Prompt] = {}

    def find_file(self, name: str) -> Path | None:
        """The file holding prompt ``name`` (the prompts directory's, else a built-in one), or
        None; an invalid name raises `PromptError`."""
        check_prompt_name(name)
        for directory in self._directories():
            found = [directory / f"{name}{s}" for s in PROMPT_SUFFIXES]
            existing = [p for p in found if p.is_file()]
            if len(existing) > 1:
                raise PromptError(
                    f"prompt {name!r} is ambiguous: {', '.join(map(str, existing))}; keep one file"
                )
            if existing:
                return existing[0]
        return None

    def _directories(self) -> list[Path]:
        """The prompts directory, then the built-in prompts (rubrics) it can override."""
        return [self.directory] + ([self.builtin] if self.builtin is not None else [])

    def available(self, *, builtin: bool = False) -> list[str]:
        """Prompt names in the prompts directory (and the built-in ones when asked)."""
        names: set[str] = set()
        for directory in self._directories() if builtin else [self.directory]:
            if directory.is_dir():
                names.update(
                    str(p.relative_to(directory).with_suffix("").as_posix())
                    for p in directory.rglob("*")
                    if p.suffix in PROMPT_SUFFIXES and p.is_file()
                )
        return sorted(names)

    def get(self, name: str, *, version: int | None = None, label: str | None = None) -> Prompt:
        """The file's current version, or a stored version selected by number or label.

        ``version`` is an int from 1, ``label`` a non-empty string (`TypeError`/`PromptError`
        otherwise)."""
        check_prompt_name(name)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise TypeError(
                f"prompt {name!r}: version must be an int (1, 2, ...), got "
                f"{type(version).__name__} {version!r}"
            )
        if version is not None and version < 1:
            raise PromptError(f"prompt {name!r}: version must be 1 or more, got {version!r}")
        if label is not None and not isinstance(label, str):
            raise TypeError(
                f"prompt {name!r}: label must be a string, got {type(label).__name__} {label!r}"
            )
        if label is not None and not label.strip():
            raise PromptError(f"prompt {name!r}: label must be a non-empty string, got {label!r}")
        if version is not None and label is not None:
            raise PromptError(f"prompt {name!r}: pass version= or label=, not both")
        current = self._load_current(name)
        if version is None and label is None:
            if current is None:
                raise self._not_found(name)
            return current
        stored = self._store.get_prompt(name, version=version, label=label)
        if stored is None:
            versions, labels = self._store.prompt_index(name)
            wanted = f"version {version}" if version is not None else f"label {label!r}"
            raise PromptError(
                f"prompt {name!r} has no {wanted}; versions: "
                f"{', '.join(map(str, versions)) or '(none)'}; labels: "
                f"{', '.join(f'{k}->{v}' for k, v in labels.items()) or '(none)'}"
            )
        if current is not None and current.hash == stored["hash"]:
            return current  # the file's own content: the store holds it masked
        return Prompt(
            name=name,
            version=stored["version"],
            type=stored["type"],
            template=stored["prompt"],
            config=stored.get("config", {}),
            labels=tuple(stored["labels"]),
            hash=stored["hash"],
        )

    def _load_current(self, name: str) -> Prompt | None:
        if name in self._current:
            return self._current[name]
        path = self.find_file(name)
        if path is None:
            return None
        from pytest_llmobs.prompt_files import content_of, parse_prompt_file

        spec = parse_prompt_file(path)
        content = content_of(spec)
        digest = content_hash(content)
        version = self._store.register_prompt(name, digest, content, spec.labels)
        stored = self._store.get_prompt(name, version=version)
        labels = tuple(stored["labels"]) if stored else tuple(spec.labels)
        prompt = Prompt(
            name=name,
            version=version,
            type=spec.type,
            template=content["prompt"],
            config=spec.config,
            labels=labels,
            hash=digest,
        )
        self._current[name] = prompt
        return prompt

    def _not_found(self, name: str) -> PromptError:
        where = str(self.directory) if self.directory.is_dir() else f"{self.directory} (missing)"
        return PromptError(
            f"prompt {name!r} not found in {where}; expected {name}.json, {name}.toml or "
            f"{name}.yaml; available: {', '.join(self.available()) or '(none)'}"
        )
