"""String evaluators with no dependencies: exact match and length bounds, plus shared helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from pytest_llmobs.evaluators.base import EvalResult
from pytest_llmobs.evaluators.normalize import normalize
from pytest_llmobs.serialize import huge_ints_as_text

NONE_OUTPUT = "output is None, not text"
"""The reason of every text evaluator's verdict on a ``None`` output (say, a tool-call-only
answer): it fails, and never matches the text ``"None"``."""


def none_output(evaluator: str, value: float | bool | str = False) -> EvalResult:
    """The failed result of ``evaluator`` on a ``None`` output, with ``value`` (False, 0 or 0.0).

    >>> none_output("contains")
    <contains FAILED value=False: output is None, not text>
    """
    return EvalResult(evaluator, value, False, NONE_OUTPUT)


NONE_EXPECTED = "expected is None: the item has no expected output to compare with"
"""The reason of a comparing evaluator's verdict when the expected text is ``None`` (a dataset
item without ``expected_output``): it fails, rather than compare with the text ``"None"``."""


def none_expected(evaluator: str, value: float | bool = False) -> EvalResult:
    """The failed result of ``evaluator`` when there is nothing to compare with.

    >>> none_expected("fuzzy", 0.0).reason
    'expected is None: the item has no expected output to compare with'
    """
    return EvalResult(evaluator, value, False, NONE_EXPECTED)


def check_share(evaluator: str, what: str, value: object) -> None:
    """A one-line error naming ``evaluator`` unless ``value`` is a number from 0 to 1.

    >>> check_share("similarity", "threshold", 2)
    Traceback (most recent call last):
    ValueError: similarity: threshold must be between 0 and 1, got 2
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{evaluator}: {what} must be a number between 0 and 1, got "
            f"{type(value).__name__} {shorten(value)}"
        )
    if not 0.0 <= value <= 1.0:  # NaN too
        raise ValueError(f"{evaluator}: {what} must be between 0 and 1, got {value!r}")


def as_text(evaluator: str, value: object, what: str = "output") -> str:
    """``value`` as text: bytes decoded as UTF-8 (never ``str()``'s ``"b'...'"``), anything else
    through ``str()``. Bytes that are not UTF-8 are a ``ValueError`` naming ``evaluator``.

    >>> as_text("contains", b"Bogot\\xc3\\xa1")
    'Bogotá'
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{evaluator}: {what} is {type(value).__name__} but not UTF-8 text "
                f"(byte {error.start}: {error.reason}); decode it yourself"
            ) from None
    return str(value)


def shorten(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to about ``limit`` characters for reasons and assertion messages.

    >>> shorten("x" * 500, 12)
    "'xxxxxxx...'"
    """
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit]  # never repr a megabyte only to throw it away
    try:
        shown = repr(value)
    except ValueError:  # an integer longer than Python prints (4,300 digits), or holding one
        shown = repr(huge_ints_as_text(value))
    if len(shown) <= limit:
        return shown
    quote = shown[0] if isinstance(value, str) else ""
    return shown[: limit - 3 - len(quote)] + "..." + quote


def shorten_all(values: Iterable[object], *, limit: int = 40, most: int = 10) -> str:
    """The shortened reprs of ``values``, comma-separated, at most ``most`` of them.

    >>> shorten_all(["a", "b", "c"], most=2)
    "'a', 'b' (+1 more)"
    """
    items = list(values)
    shown = ", ".join(shorten(v, limit) for v in items[:most])
    return shown + (f" (+{len(items) - most} more)" if len(items) > most else "")


def check_bounds(count: int, min: int | None, max: int | None, *, what: str, evaluator: str) -> str:
    """``""`` when ``min <= count <= max`` (either bound optional), else the failure reason.

    Raises ``TypeError`` when a bound is not an int, ``ValueError`` when ``min > max``.

    >>> check_bounds(5, 6, None, what="length", evaluator="char_length")
    'length 5 outside [6, ]'
    """
    for bound, given in (("min", min), ("max", max)):
        if given is not None and (isinstance(given, bool) or not isinstance(given, int)):
            raise TypeError(
                f"{evaluator}: {bound} must be an int or None, got {type(given).__name__} {given!r}"
            )
    if min is not None and max is not None and min > max:
        raise ValueError(f"{evaluator}: min={min!r} is greater than max={max!r}")
    if (min is not None and count < min) or (max is not None and count > max):
        bounds = f"[{'' if min is None else min}, {'' if max is None else max}]"
        return f"{what} {count} outside {bounds}"
    return ""


def _first_difference(a: str, b: str) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def exact_match(
    output: object,
    expected: object,
    *,
    case_sensitive: bool = True,
    strip: bool = True,
    normalize_whitespace: bool = False,
    ignore_punctuation: bool = False,
    unicode: bool = False,
) -> EvalResult:
    """Whether ``output`` equals ``expected`` after the chosen normalisations (BOOLEAN value).

    ``strip`` trims both ends; ``case_sensitive=False`` casefolds; ``normalize_whitespace``,
    ``ignore_punctuation`` and ``unicode`` (NFKC, accents stripped) work as in `normalize`.
    On a mismatch the reason shows both texts, and the normalised ones when they differ.

    >>> bool(exact_match(" Bogotá! ", "bogota", case_sensitive=False, ignore_punctuation=True,
    ...                  unicode=True))
    True

    A dict, list or tuple on either side compares by value (`structured.value_difference`:
    objects regardless of key order, the options applied to the strings in it, not to keys),
    the other side, when text, parsed as JSON first; two numbers compare by value too
    (``4 == 4.0``). Anything else compares as text (``exact_match(42, "42")`` passes).

    >>> exact_match('{"b": 2, "a": "x"}', {"a": "x", "b": 2.0})
    <exact_match passed value=True>

    A ``None`` output fails (it is not the text ``"None"``), and so does a ``None`` expected
    (an item without an expected output).
    """
    if output is None:
        return none_output("exact_match")
    if expected is None:
        return none_expected("exact_match")
    options = {
        "case": not case_sensitive,
        "whitespace": normalize_whitespace,
        "punctuation": ignore_punctuation,
        "unicode": unicode,
    }

    def normalised(text: str) -> str:
        text = normalize(text, **options)
        return text.strip() if strip else text

    if (type(output) is not str or type(expected) is not str) and _by_value(output, expected):
        return _value_match(output, expected, lambda a, b: normalised(a) == normalised(b))
    output, expected = as_text("exact_match", output), as_text("exact_match", expected, "expected")
    got, want = normalised(output), normalised(expected)
    passed = got == want
    if passed:
        return EvalResult("exact_match", True, True)
    reason = f"expected {shorten(expected)}, got {shorten(output)}"
    if shorten(got) != shorten(str(output)) or shorten(want) != shorten(str(expected)):
        reason += f"; normalised: expected {shorten(want)}, got {shorten(got)}"
    if shorten(got) == shorten(want):  # the difference lies beyond what the reprs show
        at = _first_difference(got, want)
        start = max(at - 10, 0)
        reason += (
            f"; first difference at char {at}: expected {shorten(want[start : at + 30], 50)},"
            f" got {shorten(got[start : at + 30], 50)}"
        )
    return EvalResult("exact_match", False, False, reason)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_structured(value: object) -> bool:
    """Whether ``value`` is a JSON object or array already parsed: a mapping, list or tuple."""
    return isinstance(value, (Mapping, list, tuple))


def _by_value(output: object, expected: object) -> bool:
    """Whether `exact_match` compares the two as values rather than as text."""
    if is_structured(output) or is_structured(expected):
        return True
    return _is_number(output) and _is_number(expected)


def _value_match(
    output: object, expected: object, same_text: Callable[[str, str], bool]
) -> EvalResult:
    """`exact_match` of two values, one of them at least a dict, list or tuple (or two numbers);
    a side that is neither is JSON text, parsed first."""
    from pytest_llmobs.evaluators.structured import parse_json, value_difference

    sides = {"output": output, "expected": expected}
    got, want = output, expected
    if is_structured(output) != is_structured(expected):
        what = "expected" if is_structured(output) else "output"
        try:
            parsed = parse_json(as_text("exact_match", sides[what], what))
        except ValueError as error:
            reason = (
                f"expected {shorten(expected)}, got {shorten(output)}: the {what} is not JSON "
                f"({error})"
            )
            return EvalResult("exact_match", False, False, reason)
        got, want = (got, parsed) if what == "expected" else (parsed, want)
    try:
        difference = value_difference(got, want, same_text)
    except RecursionError:  # (their reprs would recurse as deep: none is shown)
        reason = "output and expected are nested too deeply to compare"
        return EvalResult("exact_match", False, False, reason)
    if difference is None:
        return EvalResult("exact_match", True, True)
    reason = f"expected {shorten(expected)}, got {shorten(output)}"
    path, what_differs = difference
    if path != "$":
        reason += f"; at {path}: {what_differs}"
    elif is_structured(got) or is_structured(want):  # what the reprs do not say at a glance
        reason += f"; {what_differs}"
    return EvalResult("exact_match", False, False, reason)


def char_length(text: object, *, min: int | None = None, max: int | None = None) -> EvalResult:
    """The length of ``text`` in characters (NUMERIC); passes when within ``[min, max]``.

    >>> char_length("hello", max=3)
    <char_length FAILED value=5: length 5 outside [, 3]>
    """
    if text is None:
        return none_output("char_length", 0)
    length = len(as_text("char_length", text, "text"))
    reason = check_bounds(length, min, max, what="length", evaluator="char_length")
    return EvalResult("char_length", length, not reason, reason)
