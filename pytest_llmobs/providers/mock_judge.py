"""The mock model's judge mode: grading an OUTPUT section against REFERENCE, CONTEXT or INPUT.

A judge prompt is one that asks for a ``Score`` and holds an ``OUTPUT:`` section (a header alone
on its line, as the built-in rubrics in ``pytest_llmobs/rubrics/judge/`` write it). The grade is
lexical and deterministic, so ``llm_judge`` is meaningful on ``mock-llm-v1``:

- with ``REFERENCE:``, the share of the reference's content words the output contains;
- else with ``CONTEXT:``, the share of the output's content words found in the context;
- else with ``INPUT:``, the share of the input's content words the output addresses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pytest_llmobs.providers.base import Message, message_text

_HEADER = re.compile(r"^(INPUT|OUTPUT|REFERENCE|CONTEXT):[ \t]*$", re.MULTILINE)
_WORD = re.compile(r"\w+")
_STOP_TEXT = """
a an and are as at be by did do does for from has have how i in is it its of on or that
the their this to was were what when where which who why will with you your
"""
_STOP = frozenset(_STOP_TEXT.split())


def _content_words(text: str) -> list[str]:
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in _STOP:
            seen.setdefault(word, None)
    return list(seen)


def judge_sections(messages: Sequence[Message]) -> dict[str, str] | None:
    """The sections of a judge prompt, or ``None`` when the messages are not one."""
    text = "\n".join(message_text(m) for m in messages)
    if "score" not in text.lower():
        return None
    headers = list(_HEADER.finditer(text))
    sections = {
        h.group(1): text[h.end() : headers[i + 1].start() if i + 1 < len(headers) else None].strip()
        for i, h in enumerate(headers)
    }
    return sections if "OUTPUT" in sections else None


def _share(part: Sequence[str], whole: set[str]) -> float:
    return sum(1 for w in part if w in whole) / len(part) if part else 0.0


def judge_answer(sections: dict[str, str]) -> str:
    """``Score: <0..1>`` and ``Reasoning: ...`` lines grading the OUTPUT section."""
    output = _content_words(sections["OUTPUT"])
    output_set = set(output)
    if "REFERENCE" in sections:
        wanted = _content_words(sections["REFERENCE"])
        score = _share(wanted, output_set) if wanted else float(not output)
        missing = [w for w in wanted if w not in output_set]
        detail = f"missing: {', '.join(missing[:8])}" if missing else "nothing missing"
        reasoning = (
            f"The output contains {len(wanted) - len(missing)} of {len(wanted)} key terms "
            f"of the reference ({detail})."
        )
    elif "CONTEXT" in sections:
        context = set(_content_words(sections["CONTEXT"]))
        score = _share(output, context)
        unsupported = [w for w in output if w not in context]
        detail = f"unsupported: {', '.join(unsupported[:8])}" if unsupported else "all supported"
        supported = len(output) - len(unsupported)
        reasoning = f"{supported} of {len(output)} output terms appear in the context ({detail})."
    else:
        asked = _content_words(sections.get("INPUT", ""))
        score = _share(asked, output_set) if asked else 0.0
        reasoning = (
            f"The output addresses {round(score * len(asked))} of {len(asked)} terms of the input."
        )
    return f"Score: {score:.2f}\nReasoning: {reasoning}"
