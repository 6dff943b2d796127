"""Count the outcomes of a large fuzz run (issue 15): cases, clean errors, crashes, hangs, wrong outputs.

Draws cases from the strategies of tests/test_fuzz.py (small valid convs on every program, random
config text, random ``--set`` values) and classifies every case instead of stopping at the first
failure; a case still running after ``--hang-seconds`` is a hang (SIGALRM). Deterministic for a
given ``--seed``. Prints one line per kind and the first few non-clean cases.

    python bench/fuzz.py --convs 150 --texts 3000 --sets 3000
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from hypothesis import HealthCheck, Phase, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_fuzz as fuzz  # noqa: E402  (the strategies and classifiers the suite uses)
from ttsim.programs import registry  # noqa: E402


class Hang(Exception):
    """Raised by SIGALRM in a case that ran too long."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang


def run_cases(name: str, strategy: Any, count: int, classify: Callable[..., tuple[str, str]], seed_value: int,
              hang_seconds: int, bad: list[str], errors: Counter) -> Counter:
    counts: Counter = Counter()

    @seed(seed_value)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def body(case: Any) -> None:
        signal.alarm(hang_seconds)
        try:
            outcome, detail = classify(*case) if isinstance(case, tuple) else classify(case)
        except Hang:
            outcome, detail = "hang", f"> {hang_seconds} s"
        finally:
            signal.alarm(0)
        counts[outcome] += 1
        if outcome == "clean_error":
            errors[f"{name}: {detail.split(':')[0]}"] += 1
        if outcome not in ("ok", "clean_error") and len(bad) < 20:
            bad.append(f"{name}: {outcome}: {detail}: {case!r:.300}")

    body()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--convs", type=int, default=100, help="small convs per program")
    parser.add_argument("--texts", type=int, default=2000, help="random config texts")
    parser.add_argument("--sets", type=int, default=2000, help="random --set values")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--hang-seconds", type=int, default=120)
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, _alarm)
    bad: list[str] = []
    total: Counter = Counter()
    errors: Counter = Counter()
    from hypothesis import strategies as st

    runs = [(f"conv/{p}", fuzz.small_convs().map(lambda c, p=p: (c, p)), args.convs, fuzz.classify_conv)
            for p in registry.names()]
    runs += [("text", fuzz.config_texts(), args.texts, fuzz.classify_text),
             ("set", st.tuples(fuzz.set_keys, fuzz.set_values), args.sets, fuzz.classify_set)]
    for name, strategy, count, classify in runs:
        counts = run_cases(name, strategy, count, classify, args.seed, args.hang_seconds, bad, errors)
        total += counts
        print(f"{name:14s} cases {sum(counts.values()):6d}  " + "  ".join(
            f"{kind} {counts[kind]}" for kind in ("ok", "clean_error", "crash", "hang", "wrong")), flush=True)
    print(f"{'total':14s} cases {sum(total.values()):6d}  " + "  ".join(
        f"{kind} {total[kind]}" for kind in ("ok", "clean_error", "crash", "hang", "wrong")))
    for kind, count in sorted(errors.items()):
        print(f"clean error {kind}: {count}")
    for line in bad:
        print(line)


if __name__ == "__main__":
    main()
