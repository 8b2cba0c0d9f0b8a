"""What changed between two runs: model, model params, prompt versions (with a unified diff of
their text from the store), dataset versions and the plugin version."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from pytest_llmobs.compare.model import Change
from pytest_llmobs.store import Store


def prompt_text(prompt: Mapping[str, Any]) -> list[str]:
    """A stored prompt version as lines: the template (chat messages as ``[role] content``),
    then its config."""
    template = prompt.get("prompt")
    if isinstance(template, list):
        lines = []
        for message in template:
            content = str(message.get("content", "")).splitlines() or [""]
            lines.append(f"[{message.get('role')}] {content[0]}")
            lines.extend(content[1:])
    else:
        lines = str(template or "").splitlines()
    if prompt.get("config"):
        lines.append("config: " + json.dumps(prompt["config"], sort_keys=True))
    return lines


def _versions(run: Mapping[str, Any]) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    for prompt in run.get("prompts") or []:
        found.setdefault(str(prompt["name"]), []).append(
            (int(prompt["version"]), str(prompt.get("hash") or ""))
        )
    return {name: sorted(set(versions)) for name, versions in found.items()}


def _shown(versions: list[tuple[int, str]] | None) -> str | None:
    return None if not versions else ", ".join(str(v) for v, _ in versions)


def prompt_changes(
    baseline: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    store: Store | None,
    from_file: bool,
) -> list[Change]:
    before, after = _versions(baseline), _versions(current)
    changes = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old is not None and new is not None and {h for _, h in old} == {h for _, h in new}:
            continue
        change = Change("prompt", name, _shown(old), _shown(new))
        if old and new:
            (old_version, old_hash), (new_version, new_hash) = old[-1], new[-1]
            old_text = store.prompt_by_hash(name, old_hash) if store is not None else None
            new_text = store.prompt_by_hash(name, new_hash) if store is not None else None
            if old_text is None:
                where = "the baseline came from a file; " if from_file else ""
                change.note = f"{where}the store has no text of baseline version {old_version}"
            elif new_text is None:
                change.note = f"the store has no text of version {new_version}"
            else:
                change.diff = "\n".join(
                    difflib.unified_diff(
                        prompt_text(old_text),
                        prompt_text(new_text),
                        fromfile=f"{name} version {old_version}",
                        tofile=f"{name} version {new_version}",
                        lineterm="",
                    )
                )
        changes.append(change)
    return changes


def _dataset_note(store: Store | None, name: str, old: str | None, new: str | None) -> str:
    if store is None or old is None or new is None:
        return ""
    before, after = store.get_dataset(name, old), store.get_dataset(name, new)
    if before is None or after is None:
        return "no snapshot of the baseline's version in the store" if before is None else ""
    old_items = {str(i.get("id")): i for i in before}
    new_items = {str(i.get("id")): i for i in after}
    added = len(set(new_items) - set(old_items))
    removed = len(set(old_items) - set(new_items))
    changed = sum(1 for k in set(old_items) & set(new_items) if old_items[k] != new_items[k])
    return f"{added} item(s) added, {removed} removed, {changed} changed"


def _plugin_version(run: Mapping[str, Any]) -> Any:
    return run.get("plugin_version") or (run.get("environment") or {}).get("plugin_version")


def what_changed(
    baseline: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    store: Store | None = None,
    from_file: bool = False,
) -> list[Change]:
    """Every difference in model, params, prompts, datasets and plugin version."""
    changes = []
    if baseline.get("model") != current.get("model"):
        changes.append(Change("model", "model", baseline.get("model"), current.get("model")))
    old_params = dict(baseline.get("params") or {})
    new_params = dict(current.get("params") or {})
    for key in sorted(set(old_params) | set(new_params)):
        if old_params.get(key) != new_params.get(key):
            changes.append(Change("param", key, old_params.get(key), new_params.get(key)))
    changes += prompt_changes(baseline, current, store=store, from_file=from_file)
    old_data = dict(baseline.get("datasets") or {})
    new_data = dict(current.get("datasets") or {})
    for name in sorted(set(old_data) | set(new_data)):
        old, new = old_data.get(name), new_data.get(name)
        if old != new:
            changes.append(Change("dataset", name, old, new, _dataset_note(store, name, old, new)))
    if _plugin_version(baseline) != _plugin_version(current):
        changes.append(
            Change(
                "plugin_version",
                "pytest-llmobs",
                _plugin_version(baseline),
                _plugin_version(current),
            )
        )
    return changes
