"""The hand-built SimPy events (ttsim/sim_events.py) against SimPy's own calls: same schedule
keys, same event state, same processing."""

from __future__ import annotations

import simpy
from simpy.events import NORMAL

from ttsim.sim_events import scheduled_timeout, timeouts_under_keys, waiter_event

_STATE = ("_value", "_ok", "_delay")


def _state(event: simpy.Event) -> dict:
    return {name: getattr(event, name) for name in _STATE if hasattr(event, name)}


def _run_to(env: simpy.Environment, until: float) -> None:
    env.run(until=until)


def test_scheduled_timeout_is_env_timeout_with_callbacks() -> None:
    ours_env, simpy_env = simpy.Environment(), simpy.Environment()
    for env in (ours_env, simpy_env):
        _run_to(env, 5)
    seen: list = []
    ours = scheduled_timeout(ours_env, 7.5, "v", [lambda e: seen.append(("ours", e.value, e.env.now))])
    theirs = simpy_env.timeout(7.5, "v")
    theirs.callbacks.append(lambda e: seen.append(("simpy", e.value, e.env.now)))
    assert [entry[:3] for entry in ours_env._queue] == [entry[:3] for entry in simpy_env._queue]
    assert _state(ours) == _state(theirs)
    assert type(ours) is type(theirs)
    ours_env.run()
    simpy_env.run()
    assert seen == [("ours", "v", 12.5), ("simpy", "v", 12.5)]


def test_scheduled_timeout_without_callbacks_can_be_yielded() -> None:
    env = simpy.Environment()
    log = []

    def proc():
        value = yield scheduled_timeout(env, 3, "x")
        log.append((env.now, value))

    env.process(proc())
    env.run()
    assert log == [(3, "x")]


def test_timeouts_under_keys_take_the_keys_their_ids_were_taken_under() -> None:
    """A timeout whose id was taken earlier sorts among the others as env.timeout made then would."""
    ours_env, simpy_env = simpy.Environment(), simpy.Environment()
    order: dict[str, list] = {"ours": [], "simpy": []}
    # SimPy: a timeout of 4 made first, then one of 4 made second: first-made first.
    first = simpy_env.timeout(4, "first")
    first.callbacks.append(lambda e: order["simpy"].append(e.value))
    second = simpy_env.timeout(4, "second")
    second.callbacks.append(lambda e: order["simpy"].append(e.value))
    # ours: the first one's id taken first, scheduled only after the second was made
    eid = next(ours_env._eid)
    made = scheduled_timeout(ours_env, 4, "second", [lambda e: order["ours"].append(e.value)])
    timeouts_under_keys(ours_env, [(ours_env.now + 4, NORMAL, eid, "first", 4)],
                        lambda e: order["ours"].append(e.value))
    kept = next(entry[3] for entry in ours_env._queue if entry[2] == eid)
    assert sorted(entry[:3] for entry in ours_env._queue) == sorted(entry[:3] for entry in simpy_env._queue)
    assert _state(kept) == _state(first) and _state(made) == _state(second)
    ours_env.run()
    simpy_env.run()
    assert order["ours"] == order["simpy"] == ["first", "second"]


def test_waiter_event_is_an_untriggered_event() -> None:
    env = simpy.Environment()
    ours, theirs = waiter_event(env), env.event()
    assert type(ours) is type(theirs)
    assert ours.callbacks == theirs.callbacks == []
    assert not ours.triggered and not theirs.triggered
    log = []

    def proc():
        log.append((yield ours))

    env.process(proc())
    env.run()
    ours.succeed("done")
    env.run()
    assert log == ["done"]
