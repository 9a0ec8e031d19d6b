"""``bot4 status``: one screen of what the running flows report, read from Prometheus.

Everything comes from Prometheus's HTTP API (``/api/v1/query`` and ``/api/v1/alerts``) at
``settings.observability.prometheus_url``, so the view shows every scraped flow process, not only
this host's: data freshness per instrument, consumer lag, events and dead letters per stage, risk
state and breakers per account, exposure, PnL, equity and drawdown, recent denials by reason and
the alerts that fire. ``--once`` renders a single frame; otherwise it refreshes in place.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from core.errors import Bot4Error
from flows.settings import Bot4Settings, load_settings

#: (labels, value) of one series of an instant vector.
Sample = tuple[dict[str, str], float]

QUERIES = {
    "targets": 'up{job="bot4-flows"} == 1',
    "freshness": "time() - max by (key) (bot4_last_event_timestamp_seconds)",
    "lag": "sum by (topic) (bot4_consumer_lag_records)",
    "events": "sum by (stage) (rate(bot4_events_total[1m]))",
    "dead_letters": "sum by (stage, reason) (increase(bot4_dead_letters_total[1h])) > 0",
    "risk_state": "max by (account, state) (bot4_risk_state) == 1",
    "breakers": "max by (account, breaker) (bot4_breaker_open)",
    "exposure": "sum by (account, key) (bot4_exposure_quote) != 0",
    "pnl": "sum by (account, kind) (bot4_pnl_quote)",
    "equity": "max by (account) (bot4_equity_quote)",
    "drawdown": "max by (account) (bot4_drawdown_ratio)",
    "drawdown_limit": "max by (account) (bot4_drawdown_limit_ratio)",
    "denials": 'sum by (reason) (increase(bot4_risk_decisions_total{outcome="denied"}[1h])) > 0',
}


class PrometheusUnreachable(Bot4Error):
    """Prometheus did not answer; the message says where it was expected and how to start it."""


class PrometheusClient:
    """The two read endpoints of Prometheus's HTTP API that the status view needs."""

    def __init__(self, base_url: str, timeout_s: float = 3.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s

    def _get(self, path: str) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        try:
            with urllib.request.urlopen(url, timeout=self._timeout_s) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise PrometheusUnreachable(
                f"Prometheus at {self.base_url} refused {path}: HTTP {exc.code} {detail}"
            ) from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PrometheusUnreachable(
                f"Prometheus does not answer at {self.base_url} ({reason}). Operator action: start it with "
                "`bash infra/services.sh up prometheus`, or point BOT4_OBSERVABILITY__PROMETHEUS_URL at yours."
            ) from None
        if body.get("status") != "success":
            raise PrometheusUnreachable(f"Prometheus at {self.base_url} answered {path} with {body.get('error')!r}")
        data: dict[str, Any] = body["data"]
        return data

    def query(self, promql: str) -> list[Sample]:
        data = self._get(f"/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        return [(series["metric"], float(series["value"][1])) for series in data["result"]]

    def firing_alerts(self) -> list[dict[str, str]]:
        alerts = self._get("/api/v1/alerts")["alerts"]
        return [a["labels"] for a in alerts if a.get("state") == "firing"]


@dataclass(frozen=True)
class StatusSnapshot:
    """Everything one frame shows, as read at ``taken_at``."""

    taken_at: datetime
    source: str
    results: dict[str, list[Sample]] = field(default_factory=dict)
    alerts: list[dict[str, str]] = field(default_factory=list)

    def get(self, name: str) -> list[Sample]:
        return sorted(self.results.get(name, []), key=lambda s: sorted(s[0].items()))


def collect(client: PrometheusClient, now: datetime | None = None) -> StatusSnapshot:
    """Run every query of the view; raises :class:`PrometheusUnreachable` if Prometheus is down."""
    results = {name: client.query(promql) for name, promql in QUERIES.items()}
    return StatusSnapshot(now or datetime.now(UTC), client.base_url, results, client.firing_alerts())


def _age(seconds: float) -> Text:
    style = "green" if seconds < 10 else "yellow" if seconds < 60 else "red"
    if seconds < 120:
        text = f"{seconds:.1f} s"
    elif seconds < 7200:
        text = f"{seconds / 60:.1f} min"
    elif seconds < 172_800:
        text = f"{seconds / 3600:.1f} h"
    else:
        text = f"{seconds / 86400:.1f} d"
    return Text(text, style=style)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", expand=True, show_edge=False, pad_edge=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=True)
    return table


def _empty(table: Table, what: str) -> Table:
    if not table.row_count:
        table.add_row(Text(what, style="dim"), *([""] * (len(table.columns) - 1)))
    return table


def _data_panel(s: StatusSnapshot) -> RenderableType:
    fresh = _table("Data freshness (exchange time)", "instrument", "age")
    for labels, value in s.get("freshness"):
        fresh.add_row(labels.get("key", "?"), _age(value))
    lag = _table("Consumer lag", "topic", "records")
    for labels, value in s.get("lag"):
        lag.add_row(labels.get("topic", "?"), Text(f"{value:,.0f}", style="red" if value > 1000 else ""))
    events = _table("Events per stage (1 min)", "stage", "per s")
    for labels, value in s.get("events"):
        events.add_row(labels.get("stage", "?"), f"{value:,.1f}")
    dlq = _table("Dead letters (1 h)", "stage / reason", "records")
    for labels, value in s.get("dead_letters"):
        dlq.add_row(f"{labels.get('stage', '?')} / {labels.get('reason', '?')}", Text(f"{value:,.0f}", style="yellow"))
    return Panel(
        Group(
            _empty(fresh, "no instrument reported"),
            _empty(lag, "no Kafka source running"),
            _empty(events, "no events"),
            _empty(dlq, "none"),
        ),
        title="data",
    )


def _accounts(s: StatusSnapshot) -> RenderableType:
    accounts = _table("Accounts", "account", "state", "equity", "realized", "unrealized", "drawdown / limit")
    state = {labels.get("account", "?"): labels.get("state", "?") for labels, _ in s.get("risk_state")}
    equity = {labels.get("account", "?"): v for labels, v in s.get("equity")}
    drawdown = {labels.get("account", "?"): v for labels, v in s.get("drawdown")}
    limit = {labels.get("account", "?"): v for labels, v in s.get("drawdown_limit")}
    pnl = {(labels.get("account", "?"), labels.get("kind", "?")): v for labels, v in s.get("pnl")}
    names = sorted(set(state) | set(equity) | set(drawdown) | {a for a, _ in pnl})
    for account in names:
        st = state.get(account, "unknown")
        style = {"active": "green", "reducing": "yellow", "halted": "bold red"}.get(st, "dim")
        dd, lim = drawdown.get(account), limit.get(account)
        near = dd is not None and lim and dd / lim > 0.8
        accounts.add_row(
            account,
            Text(st.upper(), style=style),
            f"{equity[account]:,.2f}" if account in equity else "-",
            f"{pnl[(account, 'realized')]:,.2f}" if (account, "realized") in pnl else "-",
            f"{pnl[(account, 'unrealized')]:,.2f}" if (account, "unrealized") in pnl else "-",
            Text(
                f"{dd:.2%} / {lim:.2%}" if dd is not None and lim else (f"{dd:.2%}" if dd is not None else "-"),
                style="red" if near else "",
            ),
        )
    return _empty(accounts, "no risk gate reported")


def _risk_panel(s: StatusSnapshot) -> RenderableType:
    breakers = _table("Breakers", "account / breaker", "status")
    for labels, value in s.get("breakers"):
        breakers.add_row(
            f"{labels.get('account', '?')} / {labels.get('breaker', '?')}",
            Text("OPEN", style="bold red") if value >= 1 else Text("closed", style="green"),
        )
    exposure = _table("Exposure (quote)", "account / instrument", "notional")
    for labels, value in s.get("exposure"):
        exposure.add_row(f"{labels.get('account', '?')} / {labels.get('key', '?')}", f"{value:,.2f}")
    denials = _table("Denials (1 h)", "reason", "orders")
    for labels, value in sorted(s.get("denials"), key=lambda sample: -sample[1]):
        denials.add_row(labels.get("reason", "?"), f"{value:,.0f}")
    return Panel(
        Group(
            _empty(breakers, "no breaker reported"),
            _empty(exposure, "flat"),
            _empty(denials, "none"),
        ),
        title="risk",
    )


def render(s: StatusSnapshot) -> RenderableType:
    """One frame: header, accounts (state, equity, PnL, drawdown), data | risk side by side, alerts."""
    up = len(s.results.get("targets", []))
    header = Text.assemble(
        ("bot4 status", "bold"),
        f"  {s.taken_at:%Y-%m-%d %H:%M:%S} UTC  from {s.source}  ",
        (f"{up} flow process(es) up", "green" if up else "red"),
    )
    grid = Table.grid(expand=True)
    grid.add_column(ratio=1)
    grid.add_column(ratio=1)
    grid.add_row(_data_panel(s), _risk_panel(s))
    alerts = Text()
    for labels in sorted(s.alerts, key=lambda a: (a.get("severity", ""), a.get("alertname", ""))):
        detail = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in {"alertname", "severity"})
        alerts.append(f"{labels.get('severity', '?').upper():5} {labels.get('alertname', '?')} {detail}\n", style="red")
    if not alerts:
        alerts.append("no alert firing", style="green")
    return Group(header, Panel(_accounts(s), title="accounts"), grid, Panel(alerts, title="alerts"))


def unreachable(message: str) -> RenderableType:
    return Panel(Text(message, style="bold red"), title="bot4 status: Prometheus unreachable")


def run_status(settings: Bot4Settings, *, once: bool, interval_s: float = 2.0, console: Console | None = None) -> int:
    """Render once (exit 0, or 1 when Prometheus does not answer) or refresh until Ctrl-C."""
    console = console or Console()
    client = PrometheusClient(settings.observability.prometheus_url, settings.observability.query_timeout_s)

    def frame() -> tuple[RenderableType, bool]:
        try:
            return render(collect(client)), True
        except PrometheusUnreachable as exc:
            return unreachable(str(exc)), False

    if once:
        view, ok = frame()
        console.print(view)
        return 0 if ok else 1
    with Live(frame()[0], console=console, refresh_per_second=4, screen=False) as live:
        try:
            while True:
                time.sleep(interval_s)
                live.update(frame()[0])
        except KeyboardInterrupt:
            return 0


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(
    once: Annotated[bool, typer.Option("--once", help="Render one frame and exit (1 if Prometheus is down).")] = False,
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between refreshes.")] = 2.0,
) -> None:
    """One screen from Prometheus: freshness, lag, risk state, breakers, exposure, PnL, denials, alerts."""
    raise typer.Exit(run_status(load_settings(), once=once, interval_s=interval))
