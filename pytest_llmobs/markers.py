"""The ``llm_dataset`` marker: arguments checked once, then one test case per dataset item."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_llmobs.datasets import DatasetItem

MARKER = "llm_dataset"
MARKER_HELP = (
    f"{MARKER}(name, argname='item', thresholds=None, limit=None, repeat=None): run the test "
    "once per item of the named dataset (test ids from item ids), repeat times per item when "
    "given (default --llm-repeat); thresholds are '[dataset:] aggregate op number' gates on "
    "that dataset's aggregates"
)
_KEYWORDS = ("argname", "thresholds", "limit", "repeat")
_GIVEN_KEY = pytest.StashKey[str]()
"""The argname under which a test's ``callspec.params`` hold its copy of its dataset item."""
_TAKEN_ARGNAMES = frozenset({"llm", "prompt", "scorer", "dataset", "request"})
"""The plugin's fixtures and pytest's ``request``: an item under one of these names hides it."""


@dataclass(frozen=True, slots=True)
class DatasetMarker:
    name: str
    argname: str = "item"
    thresholds: tuple[str, ...] = ()
    limit: int | None = None
    repeat: int | None = None
    """Runs per item; ``None`` means ``--llm-repeat``."""


def read_marker(mark: pytest.Mark, where: str) -> DatasetMarker:
    """Validate the marker's arguments; a mistake raises `pytest.UsageError` naming the test."""
    prefix = f"{where}: @pytest.mark.{MARKER}"
    unknown = sorted(set(mark.kwargs) - {*_KEYWORDS, "name"})
    if unknown:
        raise pytest.UsageError(
            f"{prefix} got unknown keyword{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; accepted keywords: {', '.join(_KEYWORDS)}"
        )
    args = list(mark.args)
    if "name" in mark.kwargs:
        raise pytest.UsageError(f"{prefix}: pass the dataset name positionally")
    if len(args) != 1 or not isinstance(args[0], str) or not args[0]:
        raise pytest.UsageError(f"{prefix} needs exactly one dataset name; got {args!r}")
    argname = mark.kwargs.get("argname", "item")
    if not isinstance(argname, str) or not argname.isidentifier():
        raise pytest.UsageError(f"{prefix}: argname must be an identifier; got {argname!r}")
    if argname in _TAKEN_ARGNAMES:
        raise pytest.UsageError(
            f"{prefix}: argname {argname!r} is the name of a fixture the test may need, which "
            "the item would hide; pick another, e.g. 'case'"
        )
    thresholds = mark.kwargs.get("thresholds") or ()
    if isinstance(thresholds, str):
        thresholds = (thresholds,)
    if not all(isinstance(t, str) for t in thresholds):
        raise pytest.UsageError(
            f"{prefix}: thresholds must be strings like 'mean_accuracy >= 0.9'; got {thresholds!r}"
        )
    from pytest_llmobs.thresholds import ThresholdError, parse_threshold

    for expression in thresholds:
        try:
            threshold = parse_threshold(expression, dataset=args[0], source=f"{MARKER} marker")
        except ThresholdError as exc:
            raise pytest.UsageError(f"{where}: {exc}") from None
        if threshold.dataset != args[0]:
            raise pytest.UsageError(
                f"{prefix}({args[0]!r}): threshold {expression!r} names dataset "
                f"{threshold.dataset!r}; thresholds are scoped to dataset {args[0]!r}; leave out "
                f"the prefix or write '{args[0]}: ...'"
            )
    limit = mark.kwargs.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise pytest.UsageError(f"{prefix}: limit must be a positive integer; got {limit!r}")
    repeat = mark.kwargs.get("repeat")
    if repeat is not None and (
        isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1
    ):
        raise pytest.UsageError(f"{prefix}: repeat must be a positive integer; got {repeat!r}")
    return DatasetMarker(args[0], argname, tuple(thresholds), limit, repeat)


def parametrize(metafunc: pytest.Metafunc, mark: pytest.Mark) -> None:
    """One test case per item of the marked test's dataset (times its repeats); a misused
    marker is a usage error once collection is over (a failed test on an xdist worker)."""
    from pytest_llmobs.datasets import DatasetError
    from pytest_llmobs.stash import is_xdist_worker, session_state
    from pytest_llmobs.thresholds import ThresholdError, parse_threshold

    state = session_state(metafunc.config)
    problem = _stacked_markers(metafunc.definition)
    try:
        marker = read_marker(mark, metafunc.definition.nodeid)
    except pytest.UsageError as exc:
        problem = problem or str(exc)
    if problem is None and marker.argname not in metafunc.fixturenames:
        problem = (
            f"{metafunc.definition.nodeid}: @pytest.mark.{MARKER}({marker.name!r}) passes each "
            f"item as the argument {marker.argname!r}, which the test does not take: add "
            f"'{marker.argname}' to its parameters (or name yours with argname='...')"
        )
    if problem is not None:
        if is_xdist_worker(metafunc.config):  # a worker cannot end the session with a usage error
            pytest.fail(problem, pytrace=False)
        if problem not in state.marker_errors:  # (a class's or module's: once, not per test)
            state.marker_errors.append(problem)  # raised once collection is over
        return
    try:
        dataset = state.dataset(marker.name).limit(marker.limit)
        for expression in marker.thresholds:
            parse_threshold(expression, dataset=marker.name, source="llm_dataset marker")
    except (DatasetError, ThresholdError) as exc:
        problem = f"{metafunc.definition.nodeid}: {exc}"
    if problem is not None:  # failed outside `except`, so no chained tracebacks are shown
        pytest.fail(problem, pytrace=False)
    metafunc.parametrize(marker.argname, list(dataset), ids=[item.id for item in dataset])
    repeat = marker.repeat if marker.repeat is not None else state.settings.repeat
    if repeat > 1:
        from pytest_llmobs.repeats import parametrize_repeats

        parametrize_repeats(metafunc, repeat)


def dataset_link(item: pytest.Item, state: Any, previous: Any = None) -> dict[str, Any]:
    """What `recording.TestRecord` links a marked test's run to: the dataset item it runs and
    its dataset version, thresholds and repeat; ``{}`` for another test. The test is given a
    copy of the item (`DatasetItem.fresh`, where pytest passes it from, until `give_back`) for this
    run alone: what it changes in the item no other test, repeat or attempt sees, nor the
    run's record of the item. ``previous`` is the record of the attempt before this one
    (pytest-rerunfailures), which has the item itself."""
    mark = item.get_closest_marker(MARKER)
    callspec = getattr(item, "callspec", None)
    if mark is None or callspec is None:
        return {}
    cached = state.markers.get(id(mark))
    if cached is None or cached[0] is not mark:  # parametrized items share their marker
        cached = state.markers[id(mark)] = (mark, read_marker(mark, item.nodeid))
    marker = cached[1]
    params = callspec.params
    linked = params.get(marker.argname) if previous is None else previous.item
    if linked is None:
        return {}
    from pytest_llmobs.repeats import repeat_index

    params[marker.argname] = linked.fresh()  # (a method: no import on every test's path)
    item.stash[_GIVEN_KEY] = marker.argname
    return {
        "item": linked,
        "dataset_version": state.dataset(marker.name).version,
        "thresholds": marker.thresholds,
        "repeat": repeat_index(item),
    }


def give_back(item: pytest.Item, linked: DatasetItem) -> None:
    """Put the dataset item back where `dataset_link` put the test's copy, once the test's
    protocol ends: pytest lets go of a test's arguments then, and a copy left in place would
    hold what the test added to it for the rest of the session."""
    item.callspec.params[item.stash[_GIVEN_KEY]] = linked  # type: ignore[attr-defined]


def unparametrized(item: pytest.Item) -> str | None:
    """A marked test pytest does not parametrize (a ``unittest.TestCase`` method, a marker given
    through ``pytest.param(marks=...)`` or added at collection): said, not run once without its
    dataset."""
    import unittest

    parent = item.parent  # (`item.cls` walks the node chain: this runs for every item)
    cls = getattr(parent, "obj", None) if isinstance(parent, pytest.Class) else None
    if not (isinstance(cls, type) and issubclass(cls, unittest.TestCase)):
        return _marked_too_late(item) if item.own_markers else None
    mark = item.get_closest_marker(MARKER)
    if mark is None:
        return None
    name = repr(mark.args[0]) if mark.args else ""
    return (
        f"{item.nodeid}: @pytest.mark.{MARKER}({name}) cannot run this test once per item: "
        "pytest does not parametrize unittest.TestCase methods; write it as a test function "
        "or a plain class's method"
    )


def _marked_too_late(item: pytest.Item) -> str | None:
    """The item's own marker that its definition (the function pytest parametrized) does not
    have: given through ``pytest.param`` or ``item.add_marker``, after parametrizing."""
    for mark in item.own_markers:
        if mark.name != MARKER:
            continue
        defined = getattr(getattr(item, "obj", None), "pytestmark", ())
        if any(mark is given for given in defined):
            continue
        name = repr(mark.args[0]) if mark.args else ""
        return (
            f"{item.nodeid}: @pytest.mark.{MARKER}({name}) was given to this one test case "
            "(pytest.param(..., marks=...) or item.add_marker), too late to run it once per "
            "item; put the marker on the test function, its class or its module"
        )
    return None


def _stacked_markers(definition: pytest.Function) -> str | None:
    """Two markers where the test's closest one is (on the function, on its class, bases
    included, or on its module) would run only one dataset: said, not done silently. A marker
    on the test overrides one on its class or module, as with any pytest marker."""
    node: Any = definition
    while node is not None:  # (collection only: once per marked test function)
        own = [mark for mark in node.own_markers if mark.name == MARKER]
        if own:
            break
        node = node.parent
    if node is None or len(own) < 2:
        return None
    names = ", ".join(repr(mark.args[0]) if mark.args else "?" for mark in own)
    inherited = ""
    if isinstance(node, pytest.Class) and len(own) > _count(node.obj.__dict__.get("pytestmark")):
        inherited = " (with its base classes': a subclass's marker does not override theirs)"
    return (
        f"{node.nodeid}: @pytest.mark.{MARKER} is given {len(own)} times ({names}){inherited}; "
        "a test runs one dataset: write one test per dataset, or merge the datasets"
    )


def _count(marks: object) -> int:
    """The dataset markers in a ``pytestmark`` value (a list of marks, one mark or none)."""
    given = marks if isinstance(marks, list) else [] if marks is None else [marks]
    return sum(1 for mark in given if getattr(mark, "name", None) == MARKER)
