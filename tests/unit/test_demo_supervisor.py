"""The demo's supervision of its services, on stand-in services (no Kafka), and the thread that
runs a service for it (``ServiceThread``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from flinktrade import bus
from flinktrade.demo import (
    FAULT_ENV,
    InjectedFault,
    ServiceDied,
    ServiceThread,
    check_services,
    describe,
    fault_target,
)
from flinktrade.errors import ConfigError


@dataclass
class Stub:
    name: str
    alive: bool = True
    error: BaseException | None = None


def test_running_services_pass() -> None:
    check_services([Stub("job"), Stub("executor")])


def test_a_failed_service_is_named_with_its_error() -> None:
    services = [Stub("job"), Stub("executor", alive=False, error=ValueError("boom\nsecond line"))]
    with pytest.raises(ServiceDied) as died:
        check_services(services)
    assert died.value.service == "executor"
    assert str(died.value) == "demo stopped: the executor died: ValueError: boom"


def test_a_service_that_ended_without_an_error_counts_as_dead() -> None:
    with pytest.raises(ServiceDied, match="the api died: it stopped without an error"):
        check_services([Stub("api", alive=False)])


def test_an_error_counts_even_while_the_thread_still_winds_down() -> None:
    with pytest.raises(ServiceDied, match="notifier"):
        check_services([Stub("notifier", alive=True, error=RuntimeError("x"))])


class LateFinder:
    """Like the job: finds out that it failed only when asked whether it is alive."""

    name = "job"
    error: BaseException | None = None

    @property
    def alive(self) -> bool:
        self.error = RuntimeError("the Flink job is FAILED")
        return False


def test_liveness_is_asked_before_the_error_is_read() -> None:
    with pytest.raises(ServiceDied, match="the job died: RuntimeError: the Flink job is FAILED"):
        check_services([LateFinder()])


def test_describe_is_one_bounded_line() -> None:
    assert describe(KeyError()) == "KeyError"
    text = describe(RuntimeError("x" * 1000 + "\nmore"))
    assert "\n" not in text and len(text) == 300 and text.endswith("...")


def test_fault_target() -> None:
    assert fault_target({}) is None
    assert fault_target({FAULT_ENV: " executor "}) == "executor"
    with pytest.raises(ConfigError, match=FAULT_ENV):
        fault_target({FAULT_ENV: "database"})


class JavaError(Exception):
    """Shaped like py4j's Py4JJavaError: a useless message, the Java exception beside it."""

    class _Java:
        def toString(self) -> str:  # noqa: N802 - the Java method's name
            return "org.apache.flink.table.api.ValidationException: columns do not match.\nCause"

    java_exception = _Java()

    def __str__(self) -> str:
        return "An error occurred while calling o1104.attachAsDataStream."


def test_describe_a_jvm_error_by_its_java_exception() -> None:
    assert describe(JavaError()) == (
        "org.apache.flink.table.api.ValidationException: columns do not match."
    )


def test_a_broker_that_stays_unreachable_is_one_line() -> None:
    from confluent_kafka import KafkaError, KafkaException

    from flinktrade.demo import _patiently

    calls = []

    def read() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "transport failure"))
        return 42

    assert _patiently(read, timeout_s=30) == 42  # a broker that comes back is waited for
    calls.clear()
    with pytest.raises(ServiceDied, match="the Kafka broker died: unreachable: KafkaException"):
        _patiently(read, timeout_s=0)


class Service(ServiceThread):
    """A service that runs until stopped, or fails with ``failure`` once it runs."""

    name = "stand-in"

    def __init__(self, failure: BaseException | None = None, fault: bool = False) -> None:
        super().__init__(fault)
        self.failure = failure
        self.served = threading.Event()

    def serve(self, stop: threading.Event) -> None:
        self.served.set()
        if self.failure is not None:
            raise self.failure
        stop.wait()


def test_a_service_thread_runs_until_stopped_and_then_counts_as_stopped() -> None:
    service = Service()
    service.start()
    assert service.served.wait(30)
    check_services([service])  # running: nothing to report
    service.stop()
    assert not service.alive and service.error is None
    with pytest.raises(ServiceDied, match="the stand-in died: it stopped without an error"):
        check_services([service])


def test_a_service_thread_that_fails_is_reported_with_its_error() -> None:
    service = Service(failure=ValueError("broken pipe"))
    service.start()
    bus.wait_for(lambda: not service.alive, 30, what="the failing service's thread to end")
    assert isinstance(service.error, ValueError)
    with pytest.raises(ServiceDied, match="the stand-in died: ValueError: broken pipe"):
        check_services([service])


def test_a_faulty_service_thread_fails_before_serving() -> None:
    service = Service(fault=True)
    service.start()
    bus.wait_for(lambda: not service.alive, 30, what="the faulty service's thread to end")
    assert isinstance(service.error, InjectedFault) and not service.served.is_set()
    with pytest.raises(ServiceDied, match=f"the stand-in died: InjectedFault: .*{FAULT_ENV}"):
        check_services([service])


def test_the_job_is_built_without_the_cyclic_collector_until_it_is_submitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No collection on another thread may finalise py4j proxies while the job is built (see
    ``JobBuild``); the collector is back once the job is submitted, or abandoned."""
    import gc

    from flinktrade import demo
    from flinktrade.config import AnalyticsSettings
    from flinktrade.pipeline.job import JobIO, JobOptions

    seen: list[bool] = []

    class Env:
        def execute_async(self, name: str) -> str:
            seen.append(gc.isenabled())
            return f"client of {name}"

    def prepare(io: JobIO, options: JobOptions) -> Env:
        seen.append(gc.isenabled())
        return Env()

    monkeypatch.setattr(demo, "prepare", prepare)
    options = JobOptions(analytics=AnalyticsSettings(), name="t")
    io = JobIO(bootstrap_servers="127.0.0.1:9")
    assert gc.isenabled()
    try:
        build = demo.JobBuild(io, options)
        assert not gc.isenabled()
        job = build.submit()
        assert job.client == "client of t"
        assert seen == [False, False]
        assert gc.isenabled()
        abandoned = demo.JobBuild(io, options)
        assert not gc.isenabled()
        abandoned.close()
        assert gc.isenabled()
    finally:
        gc.enable()
