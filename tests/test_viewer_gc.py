"""Garbage cycles are collected on the GUI thread once the viewer is up, never on a worker."""

from __future__ import annotations

import gc
import threading

import pytest

pytestmark = pytest.mark.gl


class _Cycle:
    """A self-referencing object that notes which thread finalised it."""

    def __init__(self, seen: list[str]) -> None:
        self.me = self
        self.seen = seen

    def __del__(self) -> None:
        self.seen.append(threading.current_thread().name)


def test_cycles_are_freed_on_the_gui_thread_while_workers_allocate(qtbot, qapp):
    from liveaug.viewer.gui_gc import collect_on_gui_thread

    collector = collect_on_gui_thread()
    assert collect_on_gui_thread() is collector  # one per application
    assert not gc.isenabled()
    seen: list[str] = []
    for _ in range(50):
        _Cycle(seen)

    kept: list[list] = []

    def churn() -> None:  # far past gen-0's threshold: CPython alone would collect here
        kept.extend([] for _ in range(gc.get_threshold()[0] * 5))

    worker = threading.Thread(target=churn, name="worker")
    worker.start()
    worker.join()
    assert seen == []
    qtbot.waitUntil(lambda: len(seen) == 50, timeout=3000)
    assert set(seen) == {threading.main_thread().name}
    assert sum(collector.collections) > 0


def test_an_event_loop_quit_hands_collection_back_and_the_next_window_takes_it(qapp):
    from liveaug.viewer.gui_gc import collect_on_gui_thread

    collector = collect_on_gui_thread()
    qapp.aboutToQuit.emit()  # what QApplication.exec() does on its way out
    assert gc.isenabled() and not collector.timer.isActive()
    assert collect_on_gui_thread() is collector
    assert not gc.isenabled() and collector.timer.isActive()
