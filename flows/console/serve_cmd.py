"""`bot4 serve`: the operator console (API, live events, web UI) on 127.0.0.1:29200 by default."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from core.errors import Bot4Error
from flows.settings import load_settings

console = Console(stderr=True)
MIN_TOKEN_LENGTH = 16


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default: BOT4_CONSOLE__HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: BOT4_CONSOLE__PORT, 29200).")] = None,
    live: Annotated[bool, typer.Option(help="Follow the Kafka topics for live updates.")] = True,
) -> None:
    """Serve the operator console: positions, orders, fills, risk, freshness, reports, kill switch."""
    import uvicorn

    from flows.console.app import UI_DIR, create_app

    try:
        settings = load_settings()
    except Bot4Error as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if overrides:
        settings = settings.model_copy(update={"console": settings.console.model_copy(update=overrides)})
    token = settings.console.token
    if token is not None and len(token.get_secret_value()) < MIN_TOKEN_LENGTH:
        console.print(
            f"[red]BOT4_CONSOLE__TOKEN is shorter than {MIN_TOKEN_LENGTH} characters; refusing to start[/red]"
        )
        raise typer.Exit(2)
    bind = settings.console.host
    if bind not in {"127.0.0.1", "localhost", "::1"}:
        console.print(f"[yellow]binding {bind}: anyone who reaches this address can read the console[/yellow]")
    commands = "on (token required)" if settings.console.commands_enabled else "off (read-only)"
    console.print(f"console: http://{bind}:{settings.console.port}/  API: /docs  commands: {commands}")
    if not (UI_DIR / "index.html").is_file():
        console.print(f"[yellow]the web UI is not built ({UI_DIR}); run `make console`[/yellow]")
    app = create_app(settings, live=live)
    uvicorn.run(app, host=bind, port=settings.console.port, log_level="info")
