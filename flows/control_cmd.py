"""`bot4 kill`, `bot4 reset`, `bot4 pause` and `bot4 resume`: the command-line end of the operator command path."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from core.clock import SystemClock
from core.errors import Bot4Error
from core.orders import KillSwitch, PauseStrategy, ResetBreaker, ResumeStrategy
from flows.control import ALL_ACCOUNTS, Command, operator_name, publish_command
from flows.settings import load_settings

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("kill")(kill)
    app.command("reset")(reset)
    app.command("pause")(pause)
    app.command("resume")(resume)


def kill(
    reason: Annotated[str, typer.Option(help="Why (goes on the record).")],
    account: Annotated[str, typer.Option(help="Account to halt; '*' halts every account.")] = ALL_ACCOUNTS,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """KILL SWITCH: cancel every open order and halt trading until a person resets it."""
    if not reason.strip():
        console.print("[red]--reason must say why[/red]")
        raise typer.Exit(2)
    if not yes and not typer.confirm(f"Halt trading and cancel all orders for account {account!r}?"):
        raise typer.Exit(1)
    command = KillSwitch(account, operator_name(), reason, SystemClock().now())
    _publish(command)
    console.print(f"[bold red]kill switch sent[/bold red] for {account!r} by {command.requested_by}: {reason}")


def reset(
    breaker: Annotated[str, typer.Option(help="Breaker to close, e.g. drawdown, kill_switch, daily_loss.")],
    reason: Annotated[str, typer.Option(help="Why it is safe to resume (goes on the record).")],
    account: Annotated[str, typer.Option(help="Account whose breaker to reset.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Close a tripped breaker (e.g. after a drawdown halt), with a reason on the record."""
    if not reason.strip():
        console.print("[red]--reason must say why[/red]")
        raise typer.Exit(2)
    if not yes and not typer.confirm(f"Reset breaker {breaker!r} of account {account!r}?"):
        raise typer.Exit(1)
    command = ResetBreaker(account, breaker, operator_name(), reason, SystemClock().now())
    _publish(command)
    console.print(f"reset of {breaker!r} sent for {account!r} by {command.requested_by}: {reason}")


def pause(
    strategy: Annotated[str, typer.Option(help="Strategy to pause, as named in its signals (e.g. trend-v1).")],
    account: Annotated[str, typer.Option(help="Account on which to pause it; '*' for every account.")],
    reason: Annotated[str, typer.Option(help="Why (goes on the record).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Pause one strategy: its entries are denied (strategy_paused), its exits still go to the risk gate;
    open orders and positions stay. --account "*" pauses it on every account."""
    if not strategy.strip() or not reason.strip():
        console.print("[red]--strategy and --reason must not be empty[/red]")
        raise typer.Exit(2)
    if not yes and not typer.confirm(f"Pause strategy {strategy!r} on account {account!r}?"):
        raise typer.Exit(1)
    command = PauseStrategy(account, strategy, operator_name(), reason, SystemClock().now())
    _publish(command)
    console.print(f"pause of {strategy!r} sent for {account!r} by {command.requested_by}: {reason}")


def resume(
    strategy: Annotated[str, typer.Option(help="Paused strategy to resume.")],
    account: Annotated[str, typer.Option(help="Account on which to resume it; '*' for every account.")],
    reason: Annotated[str, typer.Option(help="Why it is safe to resume (goes on the record).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Resume a paused strategy: its signals go to the risk gate again."""
    if not strategy.strip() or not reason.strip():
        console.print("[red]--strategy and --reason must not be empty[/red]")
        raise typer.Exit(2)
    if not yes and not typer.confirm(f"Resume strategy {strategy!r} on account {account!r}?"):
        raise typer.Exit(1)
    command = ResumeStrategy(account, strategy, operator_name(), reason, SystemClock().now())
    _publish(command)
    console.print(f"resume of {strategy!r} sent for {account!r} by {command.requested_by}: {reason}")


def _publish(command: Command) -> None:
    try:
        settings = load_settings()
        publish_command(settings, command, via="cli")
    except Bot4Error as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
