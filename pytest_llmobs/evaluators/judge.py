"""``llm_judge``: a model grades an output with a rubric prompt from the prompt registry.

Rubrics are prompts like any other (versioned in the store, linked from the judge's generation).
Built-in rubrics live under ``judge/`` (``judge/correctness``, ``judge/groundedness``,
``judge/relevance``); a file of the same name in the prompts directory overrides one. The judge
must answer with a ``Score: <number>`` line (and optionally ``Reasoning: ...``) or a JSON object
``{"score": ..., "reasoning": ...}``; the score is mapped from the rubric's ``scale`` to 0..1.
An answer with no score is an error recorded on the judge's generation, never a silent 0.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from pytest_llmobs.evaluators.base import EvalResult

if TYPE_CHECKING:
    from pytest_llmobs.llm import LLM
    from pytest_llmobs.prompts import PromptRegistry

_SCORE = re.compile(
    r"\bscore\b\s*[:=]\s*\**\s*(?P<value>[-+]?\d+(?:\.\d+)?)(?:\s*/\s*(?P<outof>\d+(?:\.\d+)?))?",
    re.IGNORECASE,
)
_REASONING = re.compile(r"\breasoning\b\s*[:=]\s*(?P<text>.+)", re.IGNORECASE | re.DOTALL)
_JSON_DECODER = json.JSONDecoder()


class JudgeError(ValueError):
    """The judge's answer holds no usable score."""


def parse_judgement(answer: str, *, scale: tuple[float, float] = (0.0, 1.0)) -> tuple[float, str]:
    """The score (mapped from ``scale`` to 0..1) and the reasoning in a judge's answer."""
    score: float | None = None
    reasoning = ""
    data = _json_judgement(answer)
    if data is not None:
        score = float(data["score"])
        reasoning = str(data.get("reasoning", data.get("reason", "")))
    if score is None:
        match = _SCORE.search(answer)
        if match is None:
            shown = answer if len(answer) <= 200 else answer[:197] + "..."
            raise JudgeError(
                f"no score in the judge's answer {shown!r}; expected a line 'Score: <number>' "
                "or a JSON object with a numeric 'score'"
            )
        score = float(match.group("value"))
        if match.group("outof"):
            scale = (0.0, float(match.group("outof")))
        reasons = _REASONING.search(answer)
        if reasons is None:
            reasoning = answer[match.end() :].strip()
        else:  # reasoning written before the score line ends there
            end = match.start() if match.start() > reasons.start() else len(answer)
            reasoning = answer[reasons.start("text") : end].strip()
    low, high = scale
    if not low <= score <= high:
        raise JudgeError(f"judge score {score:g} is outside the rubric's scale {low:g}..{high:g}")
    return (score - low) / (high - low), reasoning


def _json_judgement(answer: str) -> dict[str, Any] | None:
    """The first JSON object in ``answer`` with a numeric ``score`` (text around it is ignored)."""
    for brace in re.finditer(r"\{", answer):
        try:
            data, _ = _JSON_DECODER.raw_decode(answer, brace.start())
        except json.JSONDecodeError:
            continue
        score = data.get("score") if isinstance(data, dict) else None
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            return data  # type: ignore[no-any-return]
    return None


def llm_judge(
    rubric: str,
    output: object,
    *,
    llm: LLM,
    prompts: PromptRegistry,
    threshold: float | None = None,
    **variables: Any,
) -> EvalResult:
    """Ask ``llm`` to grade ``output`` with the rubric prompt ``rubric``.

    ``variables`` fill the rubric's other placeholders (``input``, ``reference``, ``context``...).
    The judge call is recorded as its own generation, linked to the rubric's prompt version.
    """
    from pytest_llmobs.tracing import current_observation

    template = prompts.get(rubric)
    compiled = template.compile(output=output, **variables)
    config = template.config
    raw_scale = config.get("scale", (0, 1))
    scale = (float(raw_scale[0]), float(raw_scale[1]))
    limit = float(threshold if threshold is not None else config.get("threshold", 0.5))
    answer = llm.generate(compiled, name=f"llm_judge:{rubric}")
    try:
        value, reasoning = parse_judgement(answer.text, scale=scale)
    except JudgeError as exc:
        generation = _find_generation(current_observation(), answer.observation_id)
        if generation is not None:
            generation.fail(f"JudgeError: {exc}")
        raise JudgeError(f"llm_judge {rubric!r}: {exc}") from None
    name = "judge_" + rubric.rsplit("/", 1)[-1]
    passed = value >= limit
    reason = reasoning if passed else f"judge score {value:.2f} < {limit:g}: {reasoning}"
    return EvalResult(name, value, passed, reason)


def _find_generation(anchor: Any, observation_id: str | None) -> Any:
    if anchor is None or observation_id is None:
        return None
    return next((o for o in anchor.trace.observations if o.id == observation_id), None)
