"""Start-up cost: ``pytest --co`` on a suite that does not use the plugin, with and without it.

Run ``python benchmarks/bench_startup.py [--quick]`` (or ``benchmarks/run.py --only startup``).

A generated suite of 20 trivial tests (its own ``pytest.ini``, no plugin use) is collected with
``python -m pytest --co -q -p no:cacheprovider``: once as installed (the ``llmobs`` entry point
loads the plugin) and once with ``-p no:llmobs``, alternately, each timed from process start to
exit. Other third-party plugins installed beside ours are blocked by name (``-p no:NAME``) in
both variants, so the only difference is ours and their own start-up (langsmith's alone is about
a second) adds no noise to a difference of a few milliseconds.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

from bench_common import Row, Section, interleaved, median, section_main, subprocess_env, verdict

TARGET_ADDED_MS = 50.0
OURS = "llmobs"

TRIVIAL_TESTS = "\n\n".join(
    f"def test_trivial_{n}():\n    assert {n} + 1 == {n + 1}" for n in range(20)
)


def other_plugins() -> list[str]:
    """Names of the installed pytest plugins (entry points) other than ours."""
    return sorted({ep.name for ep in entry_points(group="pytest11") if ep.name != OURS})


def collector(directory: Path, extra: list[str]) -> Callable[[], None]:
    blocked = [arg for name in other_plugins() for arg in ("-p", f"no:{name}")]
    command = [
        sys.executable,
        *("-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"),
        *blocked,
        *extra,
    ]
    env = subprocess_env()
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)

    def run() -> None:
        done = subprocess.run(
            command, cwd=directory, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0 or "20 tests collected" not in done.stdout:
            raise RuntimeError(f"collection failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    return run


def plugin_loaded(directory: Path) -> bool:
    """Whether the default variant really has our plugin (``pytest --trace-config``)."""
    blocked = [arg for name in other_plugins() for arg in ("-p", f"no:{name}")]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", "--trace-config", *blocked],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    return "pytest_llmobs" in done.stdout


def run(quick: bool = False) -> Section:
    """Alternate both variants; one row: start-up with the plugin vs without, and the ms added."""
    rounds = 2 if quick else 21  # the VM's speed drifts: many short paired rounds
    section = Section("startup", "start-up: pytest --co on a suite that does not use the plugin")
    others = other_plugins()
    section.say(
        f"20 trivial tests, `python -m pytest --co -q`, median of {rounds} alternating rounds "
        f"after a warm-up; blocked in both: {', '.join(others) or 'none'}"
    )
    with tempfile.TemporaryDirectory(prefix="llmobs-startup-") as scratch:
        directory = Path(scratch)
        (directory / "pytest.ini").write_text("[pytest]\n")
        (directory / "test_trivial.py").write_text(TRIVIAL_TESTS + "\n")
        loaded = plugin_loaded(directory)
        times = interleaved(
            {
                "with plugin": collector(directory, []),
                "-p no:llmobs": collector(directory, ["-p", f"no:{OURS}"]),
            },
            rounds,
        )
    with_plugin, without = median(times["with plugin"]), median(times["-p no:llmobs"])
    # Each round runs both variants back to back: the median of the per-round differences is
    # robust to the slow phases a shared machine goes through, which hit a pair alike.
    added_ms = median(
        [(a - b) * 1000 for a, b in zip(times["with plugin"], times["-p no:llmobs"], strict=True)]
    )
    for name, values in times.items():
        rounds_ms = " ".join(f"{t * 1000:.0f}" for t in values)
        section.say(f"{name:<13} {median(values) * 1000:7.1f} ms   rounds: {rounds_ms}")
    section.say(
        f"added by the plugin: {added_ms:+.1f} ms, median of the {rounds} paired differences "
        f"(plugin loaded: {loaded})"
    )
    section.figures = {
        "rounds": rounds,
        "with_plugin_ms": with_plugin * 1000,
        "without_ms": without * 1000,
        "added_ms": added_ms,
        "plugin_loaded": loaded,
        "blocked": others,
    }
    section.rows.append(
        Row(
            "start-up: pytest --co, plugin / -p no:llmobs",
            f"{with_plugin * 1000:.0f} ms ({added_ms:+.0f} ms)",
            f"{without * 1000:.0f} ms",
            with_plugin / without,
            f"<= +{TARGET_ADDED_MS:g} ms",
            verdict(added_ms, "<=", TARGET_ADDED_MS),
        )
    )
    return section


def main(argv: list[str] | None = None) -> None:
    section_main(run, __doc__, "2 rounds (smoke)", argv)


if __name__ == "__main__":
    main()
