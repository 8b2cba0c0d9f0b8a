"""pytest hooks and fixtures only: each wires pytest to the module that does the work."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Generator
from typing import Any

import pytest

from pytest_llmobs import hookspecs
from pytest_llmobs.markers import (
    MARKER,
    MARKER_HELP,
    dataset_link,
    give_back,
    parametrize,
    unparametrized,
)
from pytest_llmobs.report_attributes import GOVERNED_ATTRIBUTE, PAYLOAD_ATTRIBUTE, STARTED_ATTRIBUTE
from pytest_llmobs.settings import DEFAULT_MODEL, add_options

_PHASES = frozenset({"setup", "call", "teardown"})
_RECORD_KEY = pytest.StashKey[Any]()
_COPY_KEY = pytest.StashKey[int]()
"""Which copy of a test run more than once (``--keep-duplicates``; ``--dist each``: a copy per
xdist worker, `xdist.copy_slot`) an item is: 1, 2..."""


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    if config.option.help:  # `pytest --help` runs no session: open no store, build no state
        return
    from pytest_llmobs.settings_read import read_settings
    from pytest_llmobs.stash import is_xdist_worker

    # Option values are checked now, so a typo fails at once; the state (model, store, prompt
    # registry) is built when the session first needs it: `pytest --co` on a suite that does not
    # use the plugin builds none.
    settings = read_settings(config)
    from pytest_llmobs.fixtures import fixtures_plugin

    config.pluginmanager.register(fixtures_plugin(config), "llmobs-fixtures")
    config.pluginmanager.register(SessionHooks(config), "llmobs-session")
    if config.pluginmanager.hasplugin("xdist"):
        from pytest_llmobs.xdist import XdistHooks

        config.pluginmanager.register(XdistHooks(config), "llmobs-xdist")
    if not is_xdist_worker(config) and (settings.report_html or settings.report_json):
        from pytest_llmobs.reporting.files import ReportFiles

        config.pluginmanager.register(ReportFiles(config), "llmobs-reports")


class SessionHooks:
    """Session-wide hooks. A session that runs tests builds the state when it starts; the
    others only act on a state something built during collection."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._superseded: set[str] = set()
        """Node ids whose current attempt pytest-rerunfailures runs again (see logreport)."""

    @property
    def state(self) -> Any:
        from pytest_llmobs.stash import built_state

        return built_state(self.config)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        config = session.config
        option = config.option
        # getini gives the default when the ini file names no model: that one needs no check
        if option.collectonly and (option.llm_model or config.getini("llm_model") != DEFAULT_MODEL):
            from pytest_llmobs.configure import check_models

            check_models(config)  # a model named for the session: report a bad one here too
        # --setup-only and --setup-plan run fixtures, not tests: no run either (pytest says
        # "no tests ran"; a run would store every test as passed)
        runs_no_test = option.collectonly or option.showfixtures or option.show_fixtures_per_test
        if runs_no_test or option.setuponly or option.setupplan:
            return
        from pytest_llmobs.stash import session_state

        state = session_state(session.config)
        if state.recorder is not None:
            import sqlite3

            from pytest_llmobs.store import StoreError

            try:
                state.recorder.begin()
            except sqlite3.IntegrityError:  # another session took the id since it was checked
                from pytest_llmobs.configure import run_id_taken
                from pytest_llmobs.settings_read import where

                taken = run_id_taken(
                    state.recorder.run_id, state.recorder.store, where(config, "llm_run_id")
                )
                raise pytest.UsageError(taken) from None
            except StoreError as exc:  # a damaged store: said before any test runs
                raise pytest.UsageError(
                    f"--llm-store: {exc}; no test was run: move the store away (or pass "
                    "--llm-store=DIR or --llm-no-store)"
                ) from None
            state.started = True

    @pytest.hookimpl(trylast=True)  # after conftests' (which may add markers to the items)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        state = self.state
        if state is None:
            return
        from pytest_llmobs.stash import is_xdist_worker
        from pytest_llmobs.xdist import copy_slot

        slot, slots = copy_slot(self.config)  # (0, 1) but on a worker of --dist each
        copies: dict[str, int] = {}
        for item in items:
            node_id = item.nodeid
            copy = copies.get(node_id, 0)
            copies[node_id] = copy + 1
            if copy or slot:  # (--keep-duplicates) the same test again: a trace of its own
                item.stash[_COPY_KEY] = copy * slots + slot
            problem = unparametrized(item)
            if problem is None:
                pass
            elif is_xdist_worker(self.config):  # a worker cannot end the session: it fails
                item.runtest = functools.partial(pytest.fail, problem, pytrace=False)  # type: ignore[method-assign]
            else:
                state.marker_errors.append(problem)
        if state.marker_errors:
            raise pytest.UsageError("\n".join(state.marker_errors))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        state = self.state
        if state is None:
            return
        state.regovern_snapshots()  # (every conftest of the tests is loaded by now)
        if state.recorder is not None:  # xdist's controller collects none
            state.recorder.expect(item.nodeid for item in session.items)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # Collection errors and --stepwise stop the session with `Session.Interrupted` (a
        # KeyboardInterrupt); those runs failed, only Ctrl-C and `pytest.exit` interrupt them.
        state = self.state
        if state is None or isinstance(excinfo.value, pytest.Session.Interrupted):
            return
        from pytest_llmobs.xdist import xdist_stop

        stopped = xdist_stop(excinfo.value)
        if stopped is not None:  # xdist's own stop after -x / --maxfail: a failed run
            state.stop_reason = stopped
        else:
            state.interrupted = True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome: str = report.outcome  # ("rerun" is pytest-rerunfailures' own outcome)
        if outcome == "rerun" and report.when in _PHASES:  # it runs the test again: this
            self._superseded.add(report.nodeid)  # attempt is not the test's result, the last is
        # (xdist's report of a crash rerunfailures reschedules says "rerun" too, with when
        # "???": that attempt sent no payload, and the next one's must be kept)
        # an attempt ends with its teardown (under xdist a worker has already dropped the
        # payload of one that was superseded)
        superseded = report.when == "teardown" and report.nodeid in self._superseded
        if superseded:
            self._superseded.discard(report.nodeid)
        payload = getattr(report, PAYLOAD_ATTRIBUTE, None)
        if payload is None:
            return
        if superseded:
            delattr(report, PAYLOAD_ATTRIBUTE)
            return
        state = self.state
        if state is not None and state.recorder is not None and state.started:
            state.recorder.add_item(payload, governed=getattr(report, GOVERNED_ATTRIBUTE, False))
            # Stored: pytest keeps every report until the session ends, and a payload held on
            # each would grow a long session's memory by kilobytes per test.
            delattr(report, PAYLOAD_ATTRIBUTE)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        state = self.state
        if state is None:
            return
        from pytest_llmobs.configure import finish_run

        finish_run(state, session, exitstatus)
        if state.settings.upload:
            from pytest_llmobs.exporters.session import upload_after_session

            upload_after_session(state, session)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        state = self.state
        if state is None or state.result is None:
            return
        from pytest_llmobs.reporting.terminal import write_summary

        write_summary(terminalreporter, state.result)
        from pytest_llmobs.reporting.terminal import line_writer, missing_lines

        write = line_writer(terminalreporter)  # (a node id the terminal cannot write)
        for line in missing_lines(state.result.missing):
            write(line, yellow=True)
        from pytest_llmobs.exporters.session import write_upload_summary

        write_upload_summary(terminalreporter)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if "pytest_llmobs.scorer" in sys.modules:  # (pytester runs sessions in one process)
            sys.modules["pytest_llmobs.scorer"].drop_scores_without_trace(None)  # see protocol
        state = self.state
        if state is None:
            return
        from pytest_llmobs.configure import close_models

        close_models(state)
        state.store.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    mark = metafunc.definition.get_closest_marker(MARKER)
    if mark is not None:
        parametrize(metafunc, mark)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    from pytest_llmobs.stash import session_state
    from pytest_llmobs.tracing import activate

    state = session_state(item.config)
    record = _new_record(item, state)
    try:
        with activate(record.root):
            return (yield)
    except BaseException as stop:  # Ctrl-C or `pytest.exit` in the test: no teardown report
        _keep_unfinished(item, state, item.stash.get(_RECORD_KEY, record), stop)
        from pytest_llmobs.scorer import drop_scores_without_trace

        drop_scores_without_trace(f"the session stopped ({type(stop).__name__}) in {item.nodeid}")
        raise
    finally:
        state.current_record = None
        if record.item is not None:
            give_back(item, record.item)


def _new_record(item: pytest.Item, state: Any, previous: Any = None) -> Any:
    """The record of one run of ``item`` (after its ``previous`` attempt's), made the
    session's current one."""
    from pytest_llmobs.recording import TestRecord

    record = TestRecord(
        run_id=state.run_id,
        node_id=item.nodeid,
        name=item.name,
        # (Stash.get raises and catches a KeyError for nearly every test: a test per item)
        copy=item.stash[_COPY_KEY] if _COPY_KEY in item.stash else 0,  # noqa: SIM401
        **dataset_link(item, state, previous),
    )
    item.stash[_RECORD_KEY] = record
    if record.repeat:  # `llm` keys its --llm-cache entries by it (see llm.cache_extra)
        record.root.metadata["repeat"] = record.repeat
    record.known_prompts = state.prompt_hashes  # (a prompt a module's fixture loaded before)
    state.current_record = record
    return record


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test run again inside its protocol (pytest-rerunfailures runs every attempt in one)
    gets a record of its own: the attempt pytest reports last is the item stored. Its attempt
    is read here: pytest-rerunfailures counts them inside its protocol, after the record of
    the first one was made (one rescheduled after its xdist worker crashed is a rerun too)."""
    if _RECORD_KEY not in item.stash:  # (the first attempt, nearly every test, has one)
        from pytest_llmobs.stash import built_state
        from pytest_llmobs.tracing import switch_root

        state = built_state(item.config)
        if state is None or state.current_record is None:
            return
        switch_root(_new_record(item, state, state.current_record).root)
    attempt = getattr(item, "execution_count", 1)
    if isinstance(attempt, int) and attempt > 1:
        item.stash[_RECORD_KEY].root.metadata["reruns"] = attempt - 1


def _keep_unfinished(item: pytest.Item, state: Any, record: Any, stop: BaseException) -> None:
    """Store the test the session stopped in, as an error with what it recorded so far (the
    generations it paid for), instead of losing it."""
    finished = item.stash.get(_RECORD_KEY, None) is not record
    if finished:
        return  # its teardown report carried it
    del item.stash[_RECORD_KEY]
    record.phases["teardown"] = "failed"  # never ran: an error, not a failure of the test
    record.error = record.error or f"{type(stop).__name__}: the session stopped while it ran"
    payload = record.finish()
    payload["stopped"] = True  # (no verdict: see repeats.item_verdict)
    if state.recorder is not None and state.started:
        state.recorder.add_item(payload)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """An async test makes its root span current inside its own coroutine: anyio runs every
    test of a module in one long-lived task, whose context still holds the first test's span."""
    original = pyfuncitem.obj
    record = pyfuncitem.stash.get(_RECORD_KEY, None)
    if record is None or not inspect.iscoroutinefunction(original):
        return (yield)
    from pytest_llmobs.async_roots import coroutine_in_test

    pyfuncitem.obj = coroutine_in_test(original, lambda: record.root)
    try:
        return (yield)
    finally:
        pyfuncitem.obj = original


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Generator[None]:
    """Async fixtures trace into the test they run for (see `pytest_pyfunc_call`). Outermost, so
    pytest-asyncio and anyio run the wrapped function."""
    original = fixturedef.func
    is_generator = inspect.isasyncgenfunction(original)
    if not (is_generator or inspect.iscoroutinefunction(original)) or inspect.ismethod(original):
        return (yield)  # (methods of test classes are left alone: the runners rebind them)
    from pytest_llmobs.stash import built_state

    state = built_state(request.config)
    if state is None:
        return (yield)
    from pytest_llmobs.async_roots import coroutine_in_test, fixture_generator_in_test

    def root_of() -> Any:
        record = state.current_record
        return record.root if record is not None else None

    wrap = fixture_generator_in_test if is_generator else coroutine_in_test
    fixturedef.func = wrap(original, root_of)
    try:
        return (yield)
    finally:
        fixturedef.func = original


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: other wrappers record into the test
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    record = item.stash.get(_RECORD_KEY, None)
    if record is not None:
        record.observe_report(report, call)
        if report.when == "setup" and hasattr(item.config, "workerinput"):
            setattr(report, STARTED_ATTRIBUTE, record.started())  # (xdist.XdistHooks.running)
        elif report.when == "teardown":
            from pytest_llmobs.stash import built_state
            from pytest_llmobs.tracing import deactivate

            payload = record.finish()
            deactivate()  # a later score raises NoActiveTraceError, not lost in a stored trace
            state = built_state(item.config)
            junit = state is not None and state.settings.junit_properties
            if junit or hasattr(item.config, "workerinput"):
                # xdist cannot send a string UTF-8 cannot carry, and governing here spares
                # the controller, which writes every worker's items, that work; JUnit
                # properties must be as masked as the store
                payload = _governed_here(state, report, payload)
            setattr(report, PAYLOAD_ATTRIBUTE, payload)
            del item.stash[_RECORD_KEY]
            if junit:
                from pytest_llmobs.reporting.junit import junit_properties

                # (junitxml reads the teardown report's; xdist carries them to the controller)
                report.user_properties.extend(junit_properties(payload))
    return report


def _governed_here(state: Any, report: pytest.TestReport, payload: Any) -> Any:
    governance = state.store.governance if state is not None else None
    if governance is None:
        return payload
    setattr(report, GOVERNED_ATTRIBUTE, True)
    return governance.item(payload)
