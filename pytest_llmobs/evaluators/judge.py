"""``llm_judge``: a model grades an output with a rubric prompt from the prompt registry.

Rubrics are prompts like any other (versioned in the store, linked from the judge's generation).
Built-in rubrics live under ``judge/`` (``judge/correctness``, ``judge/groundedness``,
``judge/relevance``); a file of the same name in the prompts directory overrides one. The
rubric's ``config`` may set ``scale`` (``[low, high]``, two numbers with ``low < high``; default
``[0, 1]``) and ``threshold`` (0..1, on the mapped score; default 0.5); a bad value is a
`JudgeError` naming the rubric file before the judge is asked.

The judge must answer with a ``Score: <number>`` line (and optionally ``Reasoning: ...``) or a
JSON object ``{"score": ..., "reasoning": ...}``; the score is mapped from the rubric's scale to
0..1. The first JSON object with a numeric ``score`` is read first; without one, the last line
that starts with ``Score:`` wins (a "score: 2" inside the reasoning does not); without such a
line, the last ``score:`` anywhere. A score running on (``Score: 4/5/6``, ``Score: 4.5.6``) is an
error, not its first number. An explicit denominator, ``Score: 4/5``, names
the top of the scale the judge used: the score is mapped from ``low..N`` (``low`` from the rubric),
so on a ``[1, 5]`` rubric ``Score: 4/5`` and ``Score: 4`` both give 0.75, and on ``[0, 1]``
``Score: 8/10`` gives 0.8. An answer with no usable score is an error recorded on the judge's
generation, never a silent 0.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_llmobs.aggregate_names import JUDGE_GENERATION_PREFIX
from pytest_llmobs.evaluators.base import EvalResult
from pytest_llmobs.evaluators.basic import none_expected, none_output, shorten

if TYPE_CHECKING:
    from pytest_llmobs.llm import LLM
    from pytest_llmobs.prompts import PromptRegistry

_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_SCORE_TAIL = rf"[*_ \t]*[:=][*_ \t]*(?P<value>{_NUMBER})(?:[ \t]*/[ \t]*(?P<outof>{_NUMBER}))?"
_SCORE_LINE = re.compile(r"^[ \t>#*_-]*score\b" + _SCORE_TAIL, re.IGNORECASE | re.MULTILINE)
"""``Score: 4`` at the start of a line (after markdown such as ``**``, ``#`` or ``-``)."""
_SCORE_ANYWHERE = re.compile(r"\bscore\b" + _SCORE_TAIL, re.IGNORECASE)
_RUN_ON = re.compile(r"[ \t]*/|[.,]\d")
"""What may not follow a score: another ``/`` (``4/5/6``) or more digits (``4.5.6``, ``4,5``)."""
_REASONING = re.compile(r"\breasoning\b\s*[:=]\s*(?P<text>.+)", re.IGNORECASE | re.DOTALL)
_JSON_DECODER = json.JSONDecoder()
_QUOTED_NUMBER = re.compile(_NUMBER)
_SCALE_HELP = "expected [low, high], two numbers with low < high, e.g. [1, 5]"


class JudgeError(ValueError):
    """The judge's answer holds no usable score, or the rubric's config is not valid."""


def _shown(answer: str) -> str:
    return repr(answer if len(answer) <= 200 else answer[:197] + "...")


def parse_judgement(answer: str, *, scale: tuple[float, float] = (0.0, 1.0)) -> tuple[float, str]:
    """The score (mapped from ``scale`` to 0..1) and the reasoning in a judge's answer.

    The score comes from a JSON object with a numeric ``score``, else from the last line that
    starts with ``Score:``, else from the last ``score:`` anywhere; ``Score: x/N`` is read on the
    scale ``low..N`` (see the module docstring). The reasoning is the JSON's ``reasoning``, the
    text after ``Reasoning:``, or else the text after the score.

    >>> parse_judgement("Reasoning: at most score: 2, I thought.\\nScore: 5", scale=(1, 5))
    (1.0, 'at most score: 2, I thought.')
    >>> parse_judgement("Score: 4/5", scale=(1, 5)) == parse_judgement("Score: 4", scale=(1, 5))
    True
    """
    if not scale[0] < scale[1]:
        raise JudgeError(f"scale {scale!r} is not valid; {_SCALE_HELP}")
    score: float | None = None
    reasoning = ""
    whose = "the rubric's scale"
    written = ""
    data = _json_judgement(answer)
    if data is not None:
        try:
            score = float(data["score"])
        except OverflowError:  # an integer past any float: outside every scale
            score = math.inf
        written = shorten(data["score"], 40)
        reasoning = str(data.get("reasoning", data.get("reason", "")))
    if score is None:
        matches = list(_SCORE_LINE.finditer(answer)) or list(_SCORE_ANYWHERE.finditer(answer))
        if not matches:
            raise JudgeError(
                f"no score in the judge's answer {_shown(answer)}; expected a line "
                "'Score: <number>' or a JSON object with a numeric 'score'"
            )
        match = matches[-1]
        if _RUN_ON.match(answer, match.end()):
            token = answer[match.start("value") :].split("\n", 1)[0].strip()
            raise JudgeError(
                f"judge score {shorten(token, 40)} in the answer {_shown(answer)} is not a "
                "number; expected 'Score: <number>' or 'Score: <number>/<top of scale>'"
            )
        score = float(match.group("value"))
        written = match.group("value")
        if match.group("outof"):
            top = float(match.group("outof"))
            written += "/" + match.group("outof")
            if not top > scale[0]:
                raise JudgeError(
                    f"judge score {written} in the answer {_shown(answer)}: the denominator must "
                    f"be above the rubric's lowest score {scale[0]:g}; expected 'Score: <number>' "
                    f"on the rubric's scale {scale[0]:g}..{scale[1]:g}"
                )
            scale = (scale[0], top)
            whose = "the scale it names,"
        reasons = _REASONING.search(answer)
        if reasons is None:  # what follows the score, without the punctuation ending it
            reasoning = answer[match.end() :].strip().lstrip(".,;:").strip()
        else:  # reasoning written before the score line ends there
            end = match.start() if match.start() > reasons.start() else len(answer)
            reasoning = answer[reasons.start("text") : end].strip()
    low, high = scale
    if not math.isfinite(score):
        raise JudgeError(
            f"judge score {written} in the answer {_shown(answer)} is not a finite number; "
            f"expected a number on the rubric's scale {low:g}..{high:g}"
        )
    if not low <= score <= high:
        raise JudgeError(
            f"judge score {written} in the answer {_shown(answer)} is outside {whose} "
            f"{low:g}..{high:g}"
        )
    return (score - low) / (high - low), reasoning


def _json_judgement(answer: str) -> dict[str, Any] | None:
    """The first JSON object in ``answer`` with a numeric ``score`` (text around it is ignored;
    a number in quotes, ``"4"``, counts: models often quote them)."""
    for brace in re.finditer(r"\{", answer):
        try:
            data, _ = _JSON_DECODER.raw_decode(answer, brace.start())
        except json.JSONDecodeError:
            continue
        score = data.get("score") if isinstance(data, dict) else None
        if isinstance(score, str) and _QUOTED_NUMBER.fullmatch(score.strip()):
            return {**data, "score": float(score)}
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            return data  # type: ignore[no-any-return]
    return None


def _number(value: object) -> float | None:
    """``value`` as a float when it is a finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def rubric_settings(
    config: Mapping[str, Any], *, where: str, threshold: float | None = None
) -> tuple[tuple[float, float], float]:
    """The rubric's ``scale`` and the threshold (``threshold``, else the rubric's), checked.

    ``where`` names the rubric (and its file) in the `JudgeError` a bad value raises.

    >>> rubric_settings({"scale": [1, 5]}, where="rubric")
    ((1.0, 5.0), 0.5)
    """
    raw_scale = config.get("scale", [0, 1])
    bounds = [_number(v) for v in raw_scale] if isinstance(raw_scale, (list, tuple)) else [None]
    low, high = bounds if len(bounds) == 2 else (None, None)
    if low is None or high is None or not low < high:
        raise JudgeError(f"{where}: config 'scale' {raw_scale!r} is not valid; {_SCALE_HELP}")
    given = threshold is not None
    raw_limit: object = threshold if given else config.get("threshold", 0.5)
    limit = _number(raw_limit)
    if limit is None or not 0.0 <= limit <= 1.0:
        source = "threshold=" if given else "config 'threshold' "
        raise JudgeError(
            f"{where}: {source}{raw_limit!r} is not valid; expected a number from 0 to 1 "
            "(compared with the score mapped to 0..1)"
        )
    return (low, high), limit


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
    A ``None`` output or ``reference`` fails without asking the judge (reasons as in
    `none_output` and `none_expected`); another ``None`` variable is a `PromptVariableError`.
    The judge call is recorded as its own generation, linked to the rubric's prompt version.
    """
    from pytest_llmobs.tracing import current_observation

    template = prompts.get(rubric)
    path = prompts.find_file(rubric)
    where = f"llm_judge {rubric!r}" + (f" ({path})" if path is not None else "")
    scale, limit = rubric_settings(template.config, where=where, threshold=threshold)
    name = "judge_" + rubric.rsplit("/", 1)[-1]
    # Like the other evaluators: nothing to grade, or nothing to grade against, fails without
    # asking the judge (which would read the text "None").
    if output is None:
        return none_output(name, 0.0)
    if "reference" in variables and variables["reference"] is None:
        return none_expected(name, 0.0)
    compiled = template.compile(output=output, **variables)
    answer = llm.generate(compiled, name=f"{JUDGE_GENERATION_PREFIX}{rubric}")
    try:
        value, reasoning = parse_judgement(answer.text, scale=scale)
    except JudgeError as exc:
        generation = _find_generation(current_observation(), answer.observation_id)
        if generation is not None:
            generation.fail(f"JudgeError: {exc}")
        raise JudgeError(f"llm_judge {rubric!r}: {exc}") from None
    passed = value >= limit
    below = f"judge score {value:.2f} < {limit:g}"
    reason = reasoning if passed else f"{below}: {reasoning}" if reasoning else below
    return EvalResult(name, value, passed, reason)


def _find_generation(anchor: Any, observation_id: str | None) -> Any:
    if anchor is None or observation_id is None:
        return None
    return next((o for o in anchor.trace.observations if o.id == observation_id), None)
