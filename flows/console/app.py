"""The console's HTTP application: read endpoints, live events, commands, and the built web UI.

Security model (docs/console.md): the server binds 127.0.0.1 unless configured otherwise and
answers only requests whose Host is that address (so a web page cannot reach it through DNS
rebinding). Reading needs no token. Commands need ``Authorization: Bearer <token>`` (never a cookie,
so another site cannot make a browser send it), a JSON body (a form post is refused) and a
confirmation word; they are refused outright when no token is configured or ``read_only`` is set.
The token is compared in constant time and never logged, echoed or returned.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import psycopg
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from psycopg_pool import ConnectionPool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from core.clock import SystemClock
from core.orders import KillSwitch, PauseStrategy, ResetBreaker, ResumeStrategy
from flows.console import queries, schema
from flows.console.live import LiveFeed
from flows.control import CONTROL_TOPIC, Command, command_kind, publish_command
from flows.settings import Bot4Settings

log = logging.getLogger(__name__)

UI_DIR = Path(__file__).resolve().parents[2] / "console" / "dist"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_HEARTBEAT_S = 15.0
Limit = Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)]
_COMMAND_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": schema.ErrorDetail, "description": "the body is not valid JSON"},
    401: {"model": schema.ErrorDetail, "description": "no token, or the wrong one"},
    403: {
        "model": schema.ErrorDetail,
        "description": "commands disabled (no token configured, read-only) or cross-origin",
    },
    415: {"model": schema.ErrorDetail, "description": "not a JSON body (form posts are refused)"},
}
ABSENT: list[str] = []


def create_app(settings: Bot4Settings, *, live: bool = True, ui_dir: Path = UI_DIR) -> FastAPI:
    """The console for ``settings``; ``live=False`` leaves Kafka alone (no SSE events)."""
    feed = LiveFeed(settings.kafka) if live else None
    pool = ConnectionPool(
        settings.postgres.conninfo(),
        min_size=1,
        max_size=4,
        open=False,
        kwargs={"options": "-c TimeZone=UTC -c statement_timeout=15000"},
        name="bot4-console",
    )
    books = queries.PositionBooks()  # positions: the books rebuilt from the fills, updated per request

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=False)
        if feed is not None:
            feed.start()
        try:
            yield
        finally:
            if feed is not None:
                feed.stop()
            pool.close()

    app = FastAPI(
        title="Bot4 operator console",
        version="1",
        description=(
            "Read what Bot4 holds, earns and decided; follow it live; stop it. Money and amounts are decimal "
            "strings, times ISO 8601 UTC. Commands need `Authorization: Bearer <token>`."
        ),
        lifespan=lifespan,
        responses={
            400: {"model": schema.ErrorDetail, "description": "a parameter PostgreSQL cannot take (e.g. a NUL byte)"},
            503: {"model": schema.ErrorDetail, "description": "PostgreSQL did not answer"},
        },
    )
    hosts = sorted({"127.0.0.1", "localhost", settings.console.host})
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["*"] if "0.0.0.0" in hosts else hosts)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        if not request.url.path.startswith("/api/"):
            response.headers["Content-Security-Policy"] = (
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                "connect-src 'self'; frame-src 'self'; frame-ancestors 'self'; object-src 'none'"
            )
        return response

    @app.exception_handler(psycopg.OperationalError)
    async def database_down(_: Request, exc: psycopg.OperationalError) -> JSONResponse:
        pg = settings.postgres
        detail = f"PostgreSQL at {pg.host}:{pg.port}/{pg.dbname} did not answer: {str(exc).splitlines()[0]}"
        return JSONResponse({"detail": detail}, status_code=503)

    @app.exception_handler(psycopg.errors.UndefinedTable)
    async def schema_behind(_: Request, exc: psycopg.errors.UndefinedTable) -> JSONResponse:
        detail = f"{str(exc).splitlines()[0]} in {settings.postgres.dbname}: run `bot4 db migrate`"
        return JSONResponse({"detail": detail}, status_code=503)

    @app.exception_handler(psycopg.DataError)
    async def refused_value(_: Request, exc: psycopg.DataError) -> JSONResponse:
        return JSONResponse({"detail": f"PostgreSQL refused a parameter: {str(exc).splitlines()[0]}"}, 400)

    @contextmanager
    def connection() -> Iterator[queries.Conn]:
        with pool.connection(timeout=10) as conn:
            yield conn

    @app.get("/api/info", response_model=schema.ConsoleInfo, tags=["console"])
    def info() -> schema.ConsoleInfo:
        """What this console can do (whether commands are accepted) and what it cannot show yet."""
        return schema.ConsoleInfo(
            mode=settings.mode,
            commands_enabled=settings.console.commands_enabled,
            read_only=not settings.console.commands_enabled,
            token_configured=settings.console.token is not None,
            reports_dir=str(settings.console.reports_dir),
            live_topics=feed.topics if feed is not None else [],
            live_following=sorted(feed.assigned) if feed is not None else [],
            absent=ABSENT,
        )

    @app.get("/api/accounts", response_model=list[schema.Account], tags=["portfolio"])
    def accounts() -> list[schema.Account]:
        """Every account seen in orders, fills, risk decisions, equity or commands, with its trading state."""
        with connection() as conn:
            return queries.accounts(conn)

    @app.get("/api/positions", response_model=list[schema.Position], tags=["portfolio"])
    def positions(account: str | None = None) -> list[schema.Position]:
        """Positions rebuilt from the stored fills, marked at the newest stored trade."""
        with connection() as conn:
            return queries.positions(conn, account, books)

    @app.get("/api/orders", response_model=list[schema.Order], tags=["orders"])
    def orders(
        account: str | None = None,
        symbol: str | None = None,
        status: str | None = None,
        side: str | None = None,
        limit: Limit = 200,
    ) -> list[schema.Order]:
        """Orders, newest first, with how much of each is filled."""
        with connection() as conn:
            return queries.orders(conn, account=account, symbol=symbol, status=status, side=side, limit=limit)

    @app.get(
        "/api/orders/{client_order_id}",
        response_model=schema.OrderDetail,
        tags=["orders"],
        responses={404: {"model": schema.ErrorDetail}},
    )
    def order(client_order_id: str) -> schema.OrderDetail:
        """One order with its state history (order_events) and its fills."""
        with connection() as conn:
            found = queries.order_detail(conn, client_order_id)
        if found is None:
            raise HTTPException(404, f"no order with client_order_id {client_order_id!r}")
        return found

    @app.get("/api/fills", response_model=list[schema.Fill], tags=["orders"])
    def fills(
        account: str | None = None,
        symbol: str | None = None,
        side: str | None = None,
        client_order_id: str | None = None,
        limit: Limit = 200,
    ) -> list[schema.Fill]:
        """Fills, newest first."""
        with connection() as conn:
            return queries.fills(
                conn, account=account, symbol=symbol, side=side, client_order_id=client_order_id, limit=limit
            )

    @app.get("/api/equity", response_model=schema.EquityCurve, tags=["portfolio"])
    def equity(account: str, limit: Annotated[int, Query(ge=1, le=50_000)] = 5000) -> schema.EquityCurve:
        """The account's equity and drawdown curve from the equity table (oldest first)."""
        with connection() as conn:
            return queries.equity(conn, account, limit)

    @app.get("/api/risk", response_model=list[schema.RiskState], tags=["risk"])
    def risk() -> list[schema.RiskState]:
        """Per account: the trading state, the breakers named in its state changes, commands not acted on yet."""
        with connection() as conn:
            return queries.risk_states(conn)

    @app.get("/api/decisions", response_model=list[schema.Decision], tags=["risk"])
    def decisions(
        account: str | None = None,
        kind: str | None = None,
        reason: Annotated[str | None, Query(description="denial reason code, e.g. position_limit_exceeded")] = None,
        limit: Limit = 200,
    ) -> list[schema.Decision]:
        """Risk decisions, newest first, with their reasons."""
        with connection() as conn:
            return queries.decisions(conn, account=account, kind=kind, reason=reason, limit=limit)

    @app.get("/api/models", response_model=list[schema.ModelScore], tags=["models"])
    def models() -> list[schema.ModelScore]:
        """Each model's newest prequential scores per instrument, with its drift events."""
        with connection() as conn:
            return queries.model_scores(conn)

    @app.get("/api/strategies", response_model=list[schema.StrategyStatus], tags=["risk"])
    def strategies() -> list[schema.StrategyStatus]:
        """Per account and strategy: paused or not (the latest pause/resume command), and its stored signals."""
        with connection() as conn:
            return queries.strategies(conn)

    @app.get("/api/commands", response_model=list[schema.CommandRecord], tags=["commands"])
    def command_log(limit: Limit = 100) -> list[schema.CommandRecord]:
        """The operator command audit: who, when, why, by which path."""
        with connection() as conn:
            return queries.commands(conn, limit)

    @app.get("/api/freshness", response_model=list[schema.Freshness], tags=["data"])
    def freshness() -> list[schema.Freshness]:
        """Per instrument: newest stored trade, quote and candle, their age, and dead letters."""
        with connection() as conn:
            return queries.freshness(conn, SystemClock().now())

    @app.get("/api/dead-letters", response_model=list[schema.DeadLetterCount], tags=["data"])
    def dead_letters() -> list[schema.DeadLetterCount]:
        """Dead letters by key, stage and reason."""
        with connection() as conn:
            return queries.dead_letters(conn)

    @app.get("/api/candles", response_model=schema.SymbolChart, tags=["data"])
    def candles(
        key: Annotated[
            str, Query(description="exchange:SYMBOL, e.g. binance:BTC/USDT", pattern=r"^[^:\x00]+:[^\x00]+$")
        ],
        interval: Annotated[int, Query(ge=1, le=86_400)] = 60,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> schema.SymbolChart:
        """Stored candles of that interval (else bars built from the stored trades), with our fills and the
        strategies' signals in the same span."""
        exchange, _, symbol = key.partition(":")  # the pattern guarantees both parts
        with connection() as conn:
            bars = queries.stored_candles(conn, exchange, symbol, interval, limit)
            source: Literal["candles", "trades"] = "candles"
            if not bars:
                bars, source = queries.candles(conn, exchange, symbol, interval, limit), "trades"
            ours = queries.fills_between(conn, exchange, symbol, bars[0].ts) if bars else []
            signals = queries.signals_between(conn, exchange, symbol, bars[0].ts) if bars else []
        return schema.SymbolChart(
            key=key, interval_seconds=interval, source=source, candles=bars, fills=ours, signals=signals
        )

    @app.get("/api/validation", response_model=list[schema.ValidationRun], tags=["validation"])
    def validation(limit: Limit = 100) -> list[schema.ValidationRun]:
        """`bot4 validate` runs, newest first, with a link to each run's offline report."""
        with connection() as conn:
            return queries.validation_runs(conn, limit)

    @app.get(
        "/api/validation/{run_id}/report/{name}",
        tags=["validation"],
        response_class=FileResponse,
        responses={404: {"model": schema.ErrorDetail}},
    )
    def validation_report(run_id: str, name: str) -> FileResponse:
        """A page of a validation run's offline report (its index.html, one page per table, summary.json)."""
        with connection() as conn:
            report_path = queries.validation_report_path(conn, run_id)
        if report_path is None:
            raise HTTPException(404, f"no validation run {run_id!r} with a report")
        return _file_in(Path(report_path).parent, name, {".html", ".json"})

    @app.get("/api/reports", response_model=list[schema.BacktestReport], tags=["reports"])
    def reports() -> list[schema.BacktestReport]:
        """Backtest report folders under the reports directory, newest first."""
        return _list_reports(settings.console.reports_dir)

    @app.get(
        "/api/reports/{name}/{file}",
        tags=["reports"],
        response_class=FileResponse,
        responses={404: {"model": schema.ErrorDetail}},
    )
    def report_file(name: str, file: str) -> FileResponse:
        """A file of one report folder (report.json, report.html and what the page links to)."""
        if not _SAFE_NAME.match(name):
            raise HTTPException(404, f"no report named {name!r}")
        return _file_in(settings.console.reports_dir / name, file, None)

    @app.get(
        "/api/events",
        tags=["live"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}, 503: {"model": schema.ErrorDetail}},
    )
    async def events(request: Request) -> StreamingResponse:
        """Server-sent events from Kafka: fills and order events (fills.v1), approved orders (orders.v1),
        risk decisions (risk.decisions.v1) and operator commands (control.commands.v1)."""
        if feed is None:
            raise HTTPException(503, "live updates are off in this console (started without Kafka)")
        sub = feed.subscribe()

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n: connected\n\n"
                while not await request.is_disconnected():
                    try:
                        event = await asyncio.wait_for(sub.queue.get(), _HEARTBEAT_S)
                    except TimeoutError:
                        yield b": heartbeat\n\n"
                        continue
                    yield b"event: " + event["topic"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
                    if event["topic"] == "resync":
                        return
            finally:
                feed.unsubscribe(sub)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"}
        )

    authorized = Depends(_command_guard(settings))

    @app.post(
        "/api/commands/kill",
        response_model=schema.CommandAccepted,
        status_code=202,
        tags=["commands"],
        dependencies=[authorized],
        responses=_COMMAND_REFUSALS,
    )
    def kill(body: schema.KillRequest) -> schema.CommandAccepted:
        """KILL SWITCH: halt the account (or '*': every account) and cancel every open order."""
        command = KillSwitch(body.account, body.operator.strip(), body.reason.strip(), SystemClock().now())
        return _send(settings, command)

    @app.post(
        "/api/commands/reset",
        response_model=schema.CommandAccepted,
        status_code=202,
        tags=["commands"],
        dependencies=[authorized],
        responses=_COMMAND_REFUSALS,
    )
    def reset(body: schema.ResetRequest) -> schema.CommandAccepted:
        """Close a tripped breaker (kill_switch after a kill, drawdown after a drawdown halt), with a reason."""
        command = ResetBreaker(
            body.account, body.breaker, body.operator.strip(), body.reason.strip(), SystemClock().now()
        )
        return _send(settings, command)

    @app.post(
        "/api/commands/pause",
        response_model=schema.CommandAccepted,
        status_code=202,
        tags=["commands"],
        dependencies=[authorized],
        responses=_COMMAND_REFUSALS,
    )
    def pause(body: schema.PauseRequest) -> schema.CommandAccepted:
        """Pause a strategy on an account ('*': on every account): its entries (buy signals) are denied
        (strategy_paused) until resumed; its exits still reach the risk gate, and open orders, positions and
        the account's other strategies are not touched."""
        command = PauseStrategy(
            body.account.strip(), body.strategy.strip(), body.operator.strip(), body.reason.strip(), SystemClock().now()
        )
        return _send(settings, command)

    @app.post(
        "/api/commands/resume",
        response_model=schema.CommandAccepted,
        status_code=202,
        tags=["commands"],
        dependencies=[authorized],
        responses=_COMMAND_REFUSALS,
    )
    def resume(body: schema.ResumeRequest) -> schema.CommandAccepted:
        """Resume a paused strategy: its signals go to the risk gate again."""
        command = ResumeStrategy(
            body.account.strip(), body.strategy.strip(), body.operator.strip(), body.reason.strip(), SystemClock().now()
        )
        return _send(settings, command)

    if (ui_dir / "index.html").is_file():
        from fastapi.staticfiles import StaticFiles

        app.mount("/", StaticFiles(directory=ui_dir, html=True), name="ui")
    else:

        @app.get("/", include_in_schema=False)
        def ui_missing() -> Response:
            return Response(
                f"The console UI is not built ({ui_dir} has no index.html): run `make console`.\n",
                status_code=503,
                media_type="text/plain",
            )

    return app


def _command_guard(settings: Bot4Settings) -> Any:
    console = settings.console

    def guard(request: Request) -> None:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise HTTPException(415, "commands take a JSON body (Content-Type: application/json); forms are refused")
        origin = request.headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
            raise HTTPException(403, f"cross-origin command from {origin!r} refused")
        if console.token is None or console.read_only:
            why = "no token is configured (BOT4_CONSOLE__TOKEN)" if console.token is None else "read_only is set"
            raise HTTPException(403, f"commands are disabled on this console: {why}")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = console.token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            client = request.client.host if request.client else "unknown"
            log.warning("command %s refused: missing or wrong token (client %s)", request.url.path, client)
            raise HTTPException(401, "missing or wrong token", headers={"WWW-Authenticate": "Bearer"})

    return guard


def _send(settings: Bot4Settings, command: Command) -> schema.CommandAccepted:
    publish_command(settings, command, via="api")
    kind = command_kind(command)
    log.warning("%s for %r sent by %s via api: %s", kind, command.account, command.requested_by, command.reason)
    return schema.CommandAccepted(
        kind=kind,
        account=command.account,
        breaker=command.breaker if isinstance(command, ResetBreaker) else None,
        strategy=command.strategy if isinstance(command, PauseStrategy | ResumeStrategy) else None,
        requested_by=command.requested_by,
        reason=command.reason,
        ts=command.ts,
        topic=settings.kafka.topic(CONTROL_TOPIC),
    )


def _file_in(folder: Path, name: str, suffixes: set[str] | None) -> FileResponse:
    if not _SAFE_NAME.match(name) or (suffixes is not None and Path(name).suffix not in suffixes):
        raise HTTPException(404, f"no file {name!r} here")
    path = (folder / name).resolve()
    if path.parent != folder.resolve() or not path.is_file():
        raise HTTPException(404, f"no file {name!r} in {folder.name}")
    return FileResponse(path)


def _list_reports(root: Path) -> list[schema.BacktestReport]:
    if not root.is_dir():
        return []
    out = []
    for folder in root.iterdir():
        if not folder.is_dir() or not _SAFE_NAME.match(folder.name):
            continue
        has_json, has_html = (folder / "report.json").is_file(), (folder / "report.html").is_file()
        if not (has_json or has_html):
            continue
        base = f"/api/reports/{folder.name}"
        out.append(
            schema.BacktestReport(
                name=folder.name,
                modified_at=datetime.fromtimestamp(folder.stat().st_mtime, UTC),
                has_json=has_json,
                has_html=has_html,
                json_url=f"{base}/report.json" if has_json else None,
                html_url=f"{base}/report.html" if has_html else None,
            )
        )
    return sorted(out, key=lambda r: (r.modified_at, r.name), reverse=True)
