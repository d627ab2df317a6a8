"""The watchdog that interrupts queries past their time limit: one thread, any number of
deadlines, cancellable."""

from __future__ import annotations

import threading

from mlcrew.data.watchdog import Watchdog


def test_deadlines_fire_in_order_and_cancelled_ones_never() -> None:
    dog = Watchdog()
    fired: list[str] = []
    done = threading.Event()
    dog.after(0.3, lambda: (fired.append("late"), done.set()))
    dog.after(0.1, lambda: fired.append("early"))
    never = dog.after(0.05, lambda: fired.append("cancelled"))
    dog.after(0.2, lambda: 1 / 0)  # an action that fails does not stop the others
    dog.cancel(never)
    assert done.wait(10)
    assert fired == ["early", "late"]
    threads = [t for t in threading.enumerate() if t.name == "mlcrew-watchdog"]
    assert len(threads) >= 1 and all(t.daemon for t in threads)


def test_a_cancelled_deadline_leaves_no_work_behind() -> None:
    dog = Watchdog()
    fired: list[int] = []
    handles = [dog.after(0.05, lambda i=i: fired.append(i)) for i in range(100)]
    for h in handles[::2]:
        dog.cancel(h)
    done = threading.Event()
    dog.after(0.06, done.set)  # due after all of them
    assert done.wait(10)
    assert fired == list(range(1, 100, 2))
    assert dog._heap == [] and dog._cancelled == set()
