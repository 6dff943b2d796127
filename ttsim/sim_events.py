"""SimPy events built without SimPy's Python frames: the same events under the same schedule keys.

The kernel API and the circular buffers make one SimPy event per CB publication later than its
call, per blocked CB call and per sync with SimPy's clock; ``Timeout.__init__``,
``Environment.schedule`` and ``env.event()`` cost more Python frames than the events' own work.
The helpers here build those events by hand. They are the one place outside
:class:`ttsim.device.device.Environment`, the CB waiter queues (ttsim/cb.py) and the kernel API's
early CB waiters (whose event is :func:`waiter_event`'s two lines inline, ttsim/kernel_api/base.py)
that relies on SimPy's internals (``env._queue``, ``env._eid``, an event's slots), checked against
SimPy's own calls in tests/test_sim_events.py.
"""

from __future__ import annotations

from heapq import heappush
from typing import Any, Callable

import simpy
from simpy.events import NORMAL, Event, Timeout

_new_timeout = Timeout.__new__
_new_event = Event.__new__


def scheduled_timeout(env: simpy.Environment, delay: float, value: Any = None,
                      callbacks: list | None = None) -> Timeout:
    """``env.timeout(delay, value)`` with ``callbacks`` attached: the same event under the same
    schedule key (now + delay, NORMAL, the next id)."""
    event = _new_timeout(Timeout)
    event.env, event.callbacks, event._value, event._ok = env, [] if callbacks is None else callbacks, value, True
    event._delay = delay
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), event))
    return event


def timeouts_under_keys(env: simpy.Environment, entries: list[tuple], callback: Callable) -> None:
    """For each ``(time, NORMAL, eid, value, delay)`` of ``entries``: the timeout
    ``env.timeout(delay, value)`` made when its id ``eid`` was taken would be (due at ``time``),
    with the one callback ``callback``, scheduled now under its key ``(time, NORMAL, eid)``: the
    publications a CB kept unscheduled (ttsim/cb.py) until a kernel waits for them."""
    queue = env._queue
    for time, _, eid, value, delay in entries:
        event = _new_timeout(Timeout)
        event.env, event.callbacks, event._value, event._ok = env, [callback], value, True
        event._delay = delay
        heappush(queue, (time, NORMAL, eid, event))


def waiter_event(env: simpy.Environment) -> Event:
    """``env.event()``: the untriggered event a blocked CB call waits on."""
    event = _new_event(Event)
    event.env, event.callbacks = env, []
    return event
