"""The operator's commands against a real executor, broker and Kafka: ``halt`` while it runs,
``status`` with its heartbeat, a store that does not exist, ``flatten`` (a listing first, then
twice without over-selling), ``resume --adopt-broker-positions``, and ``execute`` dying with one
line. Each command runs at least once as a real process from another directory, as an operator
would run it; where the process itself is not what a check is about, the command runs in-process
(``in_process``: typer's runner over the same settings from the environment)."""

from __future__ import annotations

import subprocess
from decimal import Decimal
from pathlib import Path

import typer
from exec_helpers import Env, coid, make_signals, wait_until
from typer.testing import CliRunner, Result

from flinktrade.errors import ConfigError
from flinktrade.events import OrderStatus
from flinktrade.execution import cli as execution_cli
from flinktrade.execution.brokers import make_broker
from flinktrade.execution.loop import Executor
from flinktrade.execution.settings import RiskSettings
from flinktrade.testing.command import run_flinktrade
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading

RISK = RiskSettings(allow_outside_market_hours=True)


def cli(env: Env, cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return run_flinktrade(*args, env=env.env(**extra), cwd=cwd)


def in_process(env: Env, *args: str, **extra: str) -> Result:
    """The command run in this process with the environment ``cli`` would give the process."""
    app = typer.Typer()
    execution_cli.register(app)
    settings_env = {
        k: v for k, v in env.env(**extra).items() if k.startswith(("FLINKTRADE_", "APCA_"))
    }
    return CliRunner().invoke(app, list(args), env=settings_env)


def test_halt_from_another_directory_stops_the_running_executor(
    env: Env, fake: FakeAlpacaTrading, start_executor, tmp_path: Path
) -> None:
    running = start_executor(env.settings(risk=RISK))
    running.started()
    first, *after = make_signals(4)
    env.produce([first])
    wait_until(lambda: fake.orders_created(coid(first)) == 1, 30, "the first order")

    status = cli(env, tmp_path / "elsewhere", "status")
    assert status.returncode == 0, status.stderr
    [seen] = [line for line in status.stdout.splitlines() if "executor last seen" in line]
    assert float(seen.split()[3]) < 10  # "executor last seen 0.4 s ago (pid ...)"

    halted = cli(env, tmp_path / "elsewhere", "halt", "--reason", "operator test")
    assert halted.returncode == 0, halted.stderr
    env.produce(after)
    store = env.store()
    try:
        wait_until(
            lambda: all(
                (o := store.get(coid(s))) is not None and o.status == OrderStatus.DENIED
                for s in after
            ),
            30,
            "the signals after the halt decided",
        )
        assert {store.get(coid(s)).rule for s in after} == {"kill_switch"}  # type: ignore[union-attr]
    finally:
        store.close()
    assert fake.orders_created() == 1  # nothing left after the halt
    status_after = in_process(env, "status")
    assert status_after.exit_code == 0, status_after.output
    assert "kill switch ON: operator test" in status_after.stdout
    running.finish()


def test_commands_refuse_a_store_that_does_not_exist(env: Env, tmp_path: Path) -> None:
    empty = tmp_path / "not-the-state-dir"
    result = cli(env, tmp_path, "halt", FLINKTRADE_STATE_DIR=str(empty))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no order store at "), lines
    assert str(empty / "execution" / "orders.sqlite") in lines[0]
    assert "FLINKTRADE_STATE_DIR" in lines[0]
    for command in ("status", "resume", "positions", "orders"):  # the same guard, in-process
        refused = in_process(env, command, FLINKTRADE_STATE_DIR=str(empty))
        assert isinstance(refused.exception, ConfigError), (command, refused.output)
        assert str(refused.exception).startswith("no order store at ")
        assert str(empty / "execution" / "orders.sqlite") in str(refused.exception)
    assert not empty.exists()  # nothing created


def test_flatten_lists_first_then_twice_never_over_sells(
    env: Env, fake: FakeAlpacaTrading, tmp_path: Path
) -> None:
    held = {"TSLA": Decimal(7), "NVDA": Decimal(3)}
    for symbol, qty in held.items():
        fake.set_position(symbol, qty)
    store = env.store()
    store.adopt_positions(held)  # the executor's store knows them
    store.close()

    listing = cli(env, tmp_path, "flatten", "--broker", "alpaca")
    assert listing.returncode == 0, listing.stderr
    assert "would sell 7 TSLA" in listing.stdout and "would sell 3 NVDA" in listing.stdout
    assert fake.order_posts == 0
    store = env.store()
    assert store.halted() is None  # a listing changes nothing
    store.close()

    fake.auto_fill = False  # the first run's orders stay open at the broker
    settings = env.settings()
    first = Executor(settings, make_broker(settings, "alpaca")).flatten(timeout_s=1.0)
    assert sorted((o.symbol, o.side.value, o.qty) for o in first) == [
        ("NVDA", "sell", Decimal(3)),
        ("TSLA", "sell", Decimal(7)),
    ]
    assert fake.order_posts == 2
    second = Executor(settings, make_broker(settings, "alpaca")).flatten(timeout_s=1.0)
    assert fake.order_posts == 2  # the open orders were counted: nothing more sent
    assert {o.client_order_id for o in second} == {o.client_order_id for o in first}

    fake.auto_fill = True
    for order in list(fake.orders.values()):
        fake.fill(order.id)
    wait_until(lambda: fake.position_qty() == {}, 30, "flat at the broker")
    third = Executor(settings, make_broker(settings, "alpaca")).flatten(timeout_s=5.0)
    assert fake.order_posts == 2 and fake.position_qty() == {}
    assert all(o.status == OrderStatus.FILLED for o in third)
    store = env.store()
    try:
        assert store.halted() == "flatten requested by the operator"
        assert store.positions() == {}  # the store followed the fills
    finally:
        store.close()


def test_resume_adopting_the_broker_positions_unblocks_the_executor(
    env: Env, fake: FakeAlpacaTrading, start_executor, tmp_path: Path
) -> None:
    fake.set_position("TSLA", Decimal(7))  # traded outside the executor
    store = env.store()
    store.halt("mismatch under investigation")
    store.close()
    result = cli(env, tmp_path, "resume", "--adopt-broker-positions", "--broker", "alpaca")
    assert result.returncode == 0, result.stderr
    assert "adopted TSLA: +7" in result.stderr and "kill switch OFF" in result.stderr
    store = env.store()
    try:
        assert store.positions() == {"TSLA": Decimal(7)} and store.halted() is None
    finally:
        store.close()
    running = start_executor(env.settings(risk=RISK))
    running.started()
    assert running.executor.blocked is None  # start-up reconciliation agrees with the broker
    [signal] = make_signals(1)
    env.produce([signal])
    wait_until(lambda: fake.orders_created(coid(signal)) == 1, 30, "an order after resuming")
    running.finish()


def test_execute_that_dies_exits_non_zero_with_one_line(env: Env, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = cli(
        env,
        tmp_path,
        "execute",
        "--broker",
        "alpaca",
        FLINKTRADE_EXECUTION__STORE_FILE=str(blocker / "orders.sqlite"),
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "executor stopped" in errors[0], result.stderr
