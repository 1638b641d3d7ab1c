"""The shared base of the loopback fakes: fault plans and waiting, without a server."""

from __future__ import annotations

import threading

import pytest

from flinktrade.testing._loopback import FaultPlan, Loopback


def anywhere(scope: object) -> bool:
    return True


def test_a_fault_answers_as_many_requests_as_armed_then_none() -> None:
    plan: FaultPlan[str] = FaultPlan()
    plan.arm("503", times=2)
    assert [plan.take(anywhere) for _ in range(3)] == ["503", "503", None]


def test_a_fault_answers_only_requests_in_its_scope() -> None:
    plan: FaultPlan[str] = FaultPlan()
    plan.arm("429", scope="/v2/stocks/bars")
    assert plan.take(lambda scope: scope == "/v1beta1/news") is None
    assert plan.take(lambda scope: scope == "/v2/stocks/bars") == "429"
    assert plan.take(anywhere) is None


def test_after_lets_that_many_matching_requests_through_first() -> None:
    plan: FaultPlan[str] = FaultPlan()
    plan.arm("503", times=1, after=2)
    assert [plan.take(anywhere) for _ in range(4)] == [None, None, "503", None]


def test_faults_are_served_in_the_order_they_were_armed() -> None:
    plan: FaultPlan[str] = FaultPlan()
    plan.arm("first")
    plan.arm("second")
    assert [plan.take(anywhere) for _ in range(3)] == ["first", "second", None]


def test_replace_forgets_what_the_scope_had_left_and_zero_times_disarms() -> None:
    plan: FaultPlan[str] = FaultPlan()
    plan.arm("old", times=5, scope="stale_lookup")
    plan.arm("new", times=1, scope="stale_lookup", replace=True)
    assert [plan.take(anywhere) for _ in range(2)] == ["new", None]
    plan.arm("old", times=5, scope="stale_lookup")
    plan.arm("new", times=0, scope="stale_lookup", replace=True)
    assert plan.take(anywhere) is None


def test_clear_disarms_everything() -> None:
    plan: FaultPlan[str] = FaultPlan()
    plan.arm("a", times=3)
    plan.arm("b", times=3, scope="x")
    plan.clear()
    assert plan.take(anywhere) is None


class Counter(Loopback):
    label = "counter"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def _start(self) -> None:
        pass

    def bump(self) -> None:
        with self.lock:
            self.count += 1
            self._changed()


def test_wait_for_returns_once_another_thread_makes_the_predicate_true() -> None:
    with Counter() as fake:
        bumper = threading.Thread(target=lambda: [fake.bump() for _ in range(3)])
        bumper.start()
        fake.wait_for(lambda f: f.count == 3, timeout_s=10)
        bumper.join()
        assert fake.count == 3


def test_wait_for_names_the_fake_and_what_it_waited_for_on_timeout() -> None:
    with Counter() as fake, pytest.raises(TimeoutError, match="counter: three bumps not met"):
        fake.wait_for(lambda f: f.count == 3, timeout_s=0.05, what="three bumps")


def test_stop_wakes_a_pause() -> None:
    fake = Counter().start()
    paused = threading.Thread(target=fake.pause, args=(60,))
    paused.start()
    fake.stop()
    paused.join(10)
    assert not paused.is_alive() and fake.stopping
