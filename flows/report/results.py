"""What a trading or backtest run leaves behind for its report, and how it is stored on disk.

A :class:`RunResults` holds the run's metadata, its equity samples, its fills, every risk decision,
the close prices of its symbols (for buy-and-hold and the price charts) and its dead-letter counts.
:func:`save_results` writes it to a folder and :func:`load_results` reads it back equal, so
``bot4 report <dir>`` can rebuild the report without re-running anything.

On disk (all UTF-8 JSON, keys sorted): ``metadata.json``, ``dead_letters.json``, and one record a
line in ``equity.jsonl``, ``prices.jsonl``, ``fills.jsonl``, ``decisions.jsonl``. Decimals are
strings and our own times are ISO-8601 UTC; fills and decisions are stored as their ``fills.v1`` /
``risk.decisions.v1`` records (times as integer microseconds), so a dump of those topics is the same
data.

>>> import tempfile
>>> from core.clock import parse_utc
>>> t0, t1 = parse_utc("2024-01-01T00:00:00Z"), parse_utc("2024-01-02T00:00:00Z")
>>> meta = RunMetadata("run-1", "backtest", ("ema",), "binance", ("BTC/USDT",), "1h", t0, t1,
...                    Decimal("10000"), "USDT")
>>> res = RunResults(meta, (EquitySample(t0, Decimal("10000"), Decimal("10000"), Decimal(0)),),
...                  prices={"BTC/USDT": (PricePoint(t0, Decimal("42283.58")),)})
>>> with tempfile.TemporaryDirectory() as tmp:
...     load_results(save_results(res, tmp)) == res
True
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.clock import parse_utc, require_utc
from core.deadletter import DeadLetter
from core.fills import Fill, fill_from_record, fill_record
from core.money import to_decimal
from risk.decisions import RiskDecision, decision_from_record

FORMAT_VERSION = 1
#: JSON scalar values allowed in the settings summary.
SettingValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class RunMetadata:
    """Who ran what, on which data. ``settings`` is a flat summary (name -> JSON scalar) of the
    settings that shaped the run (limits, fees, sizing), shown as a table in the report."""

    run_id: str
    mode: str
    strategies: tuple[str, ...]
    exchange: str
    symbols: tuple[str, ...]
    timeframe: str
    start: datetime
    end: datetime
    initial_equity: Decimal
    quote_currency: str
    settings: Mapping[str, SettingValue] = field(default_factory=dict)
    data_sources: tuple[str, ...] = ()
    wall_time_s: float = 0.0
    events_processed: int = 0

    def __post_init__(self) -> None:
        require_utc(self.start, "RunMetadata.start")
        require_utc(self.end, "RunMetadata.end")
        if self.end < self.start:
            raise ValueError(f"RunMetadata.end {self.end.isoformat()} is before start {self.start.isoformat()}")
        if not self.initial_equity > 0:
            raise ValueError(f"RunMetadata.initial_equity must be > 0, got {self.initial_equity}")
        for name, value in self.settings.items():
            if not isinstance(value, str | int | float | bool | None):
                raise TypeError(
                    f"RunMetadata.settings[{name!r}] is a {type(value).__name__}; the summary holds JSON scalars "
                    "(str, int, float, bool, None): pass a Decimal or a duration as str"
                )


@dataclass(frozen=True, slots=True)
class EquitySample:
    """The account at one moment: ``equity`` = ``cash`` + positions at mark; ``exposure`` is the gross
    notional of the positions (sum of absolute values), all in the quote currency."""

    ts: datetime
    equity: Decimal
    cash: Decimal
    exposure: Decimal

    def __post_init__(self) -> None:
        require_utc(self.ts, "EquitySample.ts")


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One close price of one symbol (a bar's close, or a sampled last price)."""

    ts: datetime
    close: Decimal

    def __post_init__(self) -> None:
        require_utc(self.ts, "PricePoint.ts")


@dataclass(frozen=True, slots=True)
class DeadLetterCount:
    """How many records one stage refused for one reason, with a few of them (``samples``, text)."""

    stage: str
    reason: str
    count: int
    samples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunResults:
    """Everything the report is built from. Sequences are in time order (the report sorts anyway)."""

    metadata: RunMetadata
    equity: tuple[EquitySample, ...]
    fills: tuple[Fill, ...] = ()
    decisions: tuple[RiskDecision, ...] = ()
    prices: Mapping[str, tuple[PricePoint, ...]] = field(default_factory=dict)
    dead_letters: tuple[DeadLetterCount, ...] = ()


def dead_letter_counts(letters: Iterable[DeadLetter], samples: int = 3) -> tuple[DeadLetterCount, ...]:
    """Count dead letters by (stage, reason), keeping the first ``samples`` of each as text
    (the detail and the start of the original bytes); sorted by stage, then reason.

    >>> from core.clock import parse_utc
    >>> t = parse_utc("2024-01-01T00:00:00Z")
    >>> dls = [DeadLetter("contracts", "crossed_book", "bid 2 > ask 1", b"{}", t)] * 2
    >>> dead_letter_counts(dls)[0].count
    2
    """
    counts: Counter[tuple[str, str]] = Counter()
    kept: dict[tuple[str, str], list[str]] = {}
    for dl in letters:
        key = (dl.stage, dl.reason)
        counts[key] += 1
        bucket = kept.setdefault(key, [])
        if len(bucket) < samples:
            original = dl.original[:200].decode("utf-8", errors="replace")
            bucket.append(f"{dl.detail} | {original}")
    return tuple(DeadLetterCount(s, r, n, tuple(kept[(s, r)])) for (s, r), n in sorted(counts.items()))


# ---- risk decisions: risk.decisions gives to_record(); the way back lives here -----------------


# ---- save / load ----------------------------------------------------------------------------


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False)


def _write_lines(path: Path, records: Iterable[Any]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for rec in records:
            out.write(_dumps(rec))
            out.write("\n")


def _read_lines(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as src:
        return [json.loads(line) for line in src if line.strip()]


def metadata_record(meta: RunMetadata) -> dict[str, Any]:
    """The metadata as JSON-ready values (decimals as strings, times as ISO UTC)."""
    return {
        "v": FORMAT_VERSION,
        "run_id": meta.run_id,
        "mode": meta.mode,
        "strategies": list(meta.strategies),
        "exchange": meta.exchange,
        "symbols": list(meta.symbols),
        "timeframe": meta.timeframe,
        "start": meta.start.isoformat(),
        "end": meta.end.isoformat(),
        "initial_equity": str(meta.initial_equity),
        "quote_currency": meta.quote_currency,
        "settings": dict(meta.settings),
        "data_sources": list(meta.data_sources),
        "wall_time_s": meta.wall_time_s,
        "events_processed": meta.events_processed,
    }


def _metadata_from_record(rec: Mapping[str, Any]) -> RunMetadata:
    if rec.get("v") != FORMAT_VERSION:
        raise ValueError(f"results metadata version {rec.get('v')!r} is not {FORMAT_VERSION}")
    return RunMetadata(
        run_id=str(rec["run_id"]),
        mode=str(rec["mode"]),
        strategies=tuple(map(str, rec["strategies"])),
        exchange=str(rec["exchange"]),
        symbols=tuple(map(str, rec["symbols"])),
        timeframe=str(rec["timeframe"]),
        start=parse_utc(rec["start"]),
        end=parse_utc(rec["end"]),
        initial_equity=to_decimal(rec["initial_equity"], name="initial_equity"),
        quote_currency=str(rec["quote_currency"]),
        settings=dict(rec["settings"]),
        data_sources=tuple(map(str, rec["data_sources"])),
        wall_time_s=float(rec["wall_time_s"]),
        events_processed=int(rec["events_processed"]),
    )


def save_results(results: RunResults, directory: str | Path) -> Path:
    """Write ``results`` into ``directory`` (created if missing; files replaced); returns the folder."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.json").write_text(_dumps(metadata_record(results.metadata)) + "\n", encoding="utf-8")
    dead = [
        {"stage": d.stage, "reason": d.reason, "count": d.count, "samples": list(d.samples)}
        for d in results.dead_letters
    ]
    (folder / "dead_letters.json").write_text(_dumps(dead) + "\n", encoding="utf-8")
    _write_lines(
        folder / "equity.jsonl",
        (
            {"ts": s.ts.isoformat(), "equity": str(s.equity), "cash": str(s.cash), "exposure": str(s.exposure)}
            for s in results.equity
        ),
    )
    _write_lines(
        folder / "prices.jsonl",
        (
            {"symbol": sym, "ts": p.ts.isoformat(), "close": str(p.close)}
            for sym in sorted(results.prices)
            for p in results.prices[sym]
        ),
    )
    _write_lines(folder / "fills.jsonl", (fill_record(f) for f in results.fills))
    _write_lines(folder / "decisions.jsonl", (d.to_record() for d in results.decisions))
    return folder


def load_results(directory: str | Path) -> RunResults:
    """Read what :func:`save_results` wrote. ``FileNotFoundError`` names the missing file."""
    folder = Path(directory)
    if not (folder / "metadata.json").is_file():
        raise FileNotFoundError(f"no run results in {folder}: metadata.json is missing (expected save_results output)")
    meta = _metadata_from_record(json.loads((folder / "metadata.json").read_text(encoding="utf-8")))
    dead = tuple(
        DeadLetterCount(str(d["stage"]), str(d["reason"]), int(d["count"]), tuple(map(str, d["samples"])))
        for d in json.loads((folder / "dead_letters.json").read_text(encoding="utf-8"))
    )
    equity = tuple(
        EquitySample(
            parse_utc(r["ts"]),
            to_decimal(r["equity"], name="equity"),
            to_decimal(r["cash"], name="cash"),
            to_decimal(r["exposure"], name="exposure"),
        )
        for r in _read_lines(folder / "equity.jsonl")
    )
    prices: dict[str, list[PricePoint]] = {}
    for r in _read_lines(folder / "prices.jsonl"):
        prices.setdefault(str(r["symbol"]), []).append(PricePoint(parse_utc(r["ts"]), to_decimal(r["close"])))
    fills = tuple(fill_from_record(r) for r in _read_lines(folder / "fills.jsonl"))
    decisions = tuple(decision_from_record(r) for r in _read_lines(folder / "decisions.jsonl"))
    return RunResults(meta, equity, fills, decisions, {sym: tuple(points) for sym, points in prices.items()}, dead)
