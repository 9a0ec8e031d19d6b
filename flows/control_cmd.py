"""`bot4 kill` and `bot4 reset`: the command-line end of the operator command path."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from core.clock import SystemClock
from core.errors import Bot4Error
from core.orders import KillSwitch, ResetBreaker
from flows.control import ALL_ACCOUNTS, operator_name, publish_command
from flows.settings import load_settings

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("kill")(kill)
    app.command("reset")(reset)


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


def _publish(command: KillSwitch | ResetBreaker) -> None:
    try:
        settings = load_settings()
        publish_command(settings, command, via="cli")
    except Bot4Error as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
