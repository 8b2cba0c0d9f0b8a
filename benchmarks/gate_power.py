"""How often the regression gate cries wolf, and how often it catches a real drop.

Simulates pairs of runs (baseline, current) of a pass/fail metric with base accuracy 0.85 and
feeds each pair to the gate's own statistics (`pytest_llmobs.compare.stats.paired_test` and
`judge`, as `llmobs compare` and ``--llm-baseline`` use them, ``--llm-max-drop`` 0). Two error
models:

- *correlated*: the new model keeps the baseline's failures and fails some more (a drop of d
  points turns d/0.85 of the passing items into failures); on top of that each run redraws each
  item's outcome with probability 3% (per-item noise), so even an unchanged model differs on a
  few items;
- *independent*: each run draws every item's outcome afresh (accuracy 0.85, and 0.85 - d for the
  new model): the worst case for a paired test.

Prints, for n = 50, 200 and 1,000 items, the false-alarm rate (nothing changed) and the
detection rate for drops of 2, 5 and 10 points; then, for each drop, the fewest items on a grid
that reach 80% detection. ``--quick`` runs few simulations (a smoke test). Saves nothing.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from pytest_llmobs.compare.stats import judge, paired_test

BASE_ACCURACY = 0.85
NOISE = 0.03
DROPS = (0.02, 0.05, 0.10)
SIZES = (50, 200, 1000)
GRID = (
    50,
    75,
    100,
    150,
    200,
    300,
    400,
    600,
    800,
    1000,
    1500,
    2000,
    3000,
    4000,
    6000,
    8000,
    12000,
    16000,
)
TARGET_DETECTION = 0.80
TARGET_FALSE_ALARMS = 0.05

Sampler = Callable[[np.random.Generator, int, float], tuple[Any, Any]]


def correlated(rng: np.random.Generator, n: int, drop: float) -> tuple[Any, Any]:
    truth = rng.random(n) < BASE_ACCURACY
    broken = truth & (rng.random(n) < drop / BASE_ACCURACY)  # new failures, old ones kept
    new_truth = truth & ~broken
    baseline = np.where(rng.random(n) < NOISE, rng.random(n) < BASE_ACCURACY, truth)
    current = np.where(rng.random(n) < NOISE, rng.random(n) < BASE_ACCURACY - drop, new_truth)
    return baseline.astype(float), current.astype(float)


def independent(rng: np.random.Generator, n: int, drop: float) -> tuple[Any, Any]:
    baseline = rng.random(n) < BASE_ACCURACY
    current = rng.random(n) < BASE_ACCURACY - drop
    return baseline.astype(float), current.astype(float)


MODELS: dict[str, Sampler] = {"correlated": correlated, "independent": independent}


def gate_fails(baseline: Any, current: Any) -> bool:
    """Exactly what the gate decides for ``mean_accuracy`` on these per-item outcomes."""
    test = paired_test(baseline, current, binary=True)
    _, fails = judge(test, name="mean_accuracy", delta=test.interval.estimate, max_drop=0.0)
    return fails


def rate(model: str, n: int, drop: float, simulations: int) -> float:
    seed = [sum(map(ord, model)), n, round(drop * 1000)]
    rng = np.random.default_rng(seed)
    sample = MODELS[model]
    return sum(gate_fails(*sample(rng, n, drop)) for _ in range(simulations)) / simulations


def items_needed(model: str, drop: float, simulations: int, known: dict[int, float]) -> int | None:
    """The first grid size with >= 80% detection (``None`` beyond the grid)."""
    for n in GRID:
        detected = known[n] if n in known else rate(model, n, drop, simulations)
        known[n] = detected
        if detected >= TARGET_DETECTION:
            return n
    return None


def pct(value: float) -> str:
    return f"{value:.1%}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--simulations", type=int, default=400, help="per cell (default 400)")
    parser.add_argument("--quick", action="store_true", help="20 simulations per cell (smoke)")
    args = parser.parse_args(argv)
    simulations = 20 if args.quick else args.simulations
    started = time.perf_counter()

    print(
        f"regression gate power: base accuracy {BASE_ACCURACY}, {simulations} simulated run "
        f"pairs per cell, max drop 0; correlated noise {NOISE:.0%} per item per run"
    )
    print(
        "gate: pass/fail values: McNemar mid-p < 0.05 with a drop; others: 95% paired bootstrap "
        "interval below 0 (>= 5 items changed)"
    )
    header = f"{'errors':<12} {'n':>5}  {'false alarms':>12}" + "".join(
        f"  {f'detect -{d * 100:.0f}pt':>12}" for d in DROPS
    )
    print(header)
    print("-" * len(header))
    table: dict[tuple[str, int, float], float] = {}
    for model in MODELS:
        for n in SIZES:
            cells = [rate(model, n, 0.0, simulations)] + [
                rate(model, n, d, simulations) for d in DROPS
            ]
            table[(model, n, 0.0)] = cells[0]
            for d, value in zip(DROPS, cells[1:], strict=True):
                table[(model, n, d)] = value
            print(
                f"{model:<12} {n:>5}  {pct(cells[0]):>12}"
                + "".join(f"  {pct(v):>12}" for v in cells[1:])
            )

    print()
    print(
        f"items needed for {TARGET_DETECTION:.0%} detection (first size on the grid "
        f"{GRID[0]}..{GRID[-1]}):"
    )
    needed: dict[tuple[str, float], int | None] = {}
    for model in MODELS:
        parts = []
        for d in DROPS:
            known = {n: table[(model, n, d)] for n in SIZES}
            needed[(model, d)] = items_needed(model, d, simulations, known)
            shown = f"{needed[(model, d)]:,}" if needed[(model, d)] else f"> {GRID[-1]:,}"
            parts.append(f"-{d * 100:.0f}pt: {shown}")
        print(f"  {model:<12} " + "   ".join(parts))

    worst = max(table[(m, n, 0.0)] for m in MODELS for n in SIZES)
    target = table[("correlated", 200, 0.05)]
    error = 1.96 * math.sqrt(0.05 * 0.95 / simulations)
    print()
    print("interpretation:")
    print(
        f"- false alarms: at most {pct(worst)} in any cell (target <= "
        f"{TARGET_FALSE_ALARMS:.0%}; {'met' if worst <= TARGET_FALSE_ALARMS else 'NOT met'}). "
        f"The gate is one-sided (it fails on drops only), so its nominal rate is 2.5%; "
        f"Monte Carlo error at 5% is about ±{error:.1%}."
    )
    print(
        f"- a 5-point drop over 200 items with correlated errors is caught {pct(target)} of the "
        f"time (target {TARGET_DETECTION:.0%}; "
        f"{'met' if target >= TARGET_DETECTION else 'NOT met'})."
    )
    for model in MODELS:
        short = []
        for d in DROPS:
            below = [f"{n:,}" for n in SIZES if table[(model, n, d)] < TARGET_DETECTION]
            if below:
                need = needed[(model, d)]
                about = f"about {need:,}" if need else f"more than {GRID[-1]:,}"
                short.append(f"-{d * 100:.0f}pt at n = {', '.join(below)} (needs {about})")
        if short:
            print(f"- {model} errors, below {TARGET_DETECTION:.0%} detection: " + "; ".join(short))
    print(
        "- only the items that change between runs carry information. Correlated errors leave "
        "few such items besides the new failures, so small drops show; independent errors make "
        "about a quarter of the items differ by chance, and the same drop needs several times "
        "more items. Re-running an unchanged model shows which case a suite is in: its flipped "
        "items are the noise."
    )
    print(f"(took {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
