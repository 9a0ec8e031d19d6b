"""Market metadata (precision, lot limits, minimum notional, fees) kept in a file, so backtests and
the paper venue run offline with the exchange's real rules.

``bot4 markets sync`` refreshes the file from the exchange through the real ccxt client when the
exchange is reachable (:func:`fetch_capabilities`); everything else reads it back with
:func:`load_capabilities`. The file is plain JSON, Decimal values as strings, one file per exchange.

>>> caps = VenueCapabilities("binance", FeeSchedule(Decimal("0.001"), Decimal("0.001")),
...                          {"BTC/USDT": InstrumentRules(Decimal("0.01"), Decimal("0.00001"))})
>>> capabilities_from_json(capabilities_to_json(caps, source="doctest")) == caps
True
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from core.errors import ConfigError
from execution.venue import FeeSchedule, VenueCapabilities
from risk.market import InstrumentRules

FORMAT = "bot4.markets.v1"


def capabilities_to_json(caps: VenueCapabilities, *, source: str) -> bytes:
    """The markets file's bytes: sorted, stable, Decimals as strings; ``source`` says where they came from."""
    rules = {
        symbol: {
            "price_tick": str(r.price_tick),
            "amount_step": str(r.amount_step),
            "min_amount": str(r.min_amount),
            "max_amount": None if r.max_amount is None else str(r.max_amount),
            "min_notional": str(r.min_notional),
        }
        for symbol, r in sorted(caps.rules.items())
    }
    body = {
        "format": FORMAT,
        "exchange": caps.exchange,
        "source": source,
        "fees": {"maker": str(caps.fees.maker), "taker": str(caps.fees.taker)},
        "client_id_max_length": caps.client_id_max_length,
        "rules": rules,
    }
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def capabilities_from_json(data: bytes) -> VenueCapabilities:
    """Read a markets file's bytes; a file of another format is refused with what was found."""
    body = orjson.loads(data)
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        found = body.get("format") if isinstance(body, dict) else type(body).__name__
        raise ConfigError(f"markets file format is {found!r}, expected {FORMAT!r}; run `bot4 markets sync`")
    rules = {
        symbol: InstrumentRules(
            Decimal(r["price_tick"]),
            Decimal(r["amount_step"]),
            Decimal(r["min_amount"]),
            None if r["max_amount"] is None else Decimal(r["max_amount"]),
            Decimal(r["min_notional"]),
        )
        for symbol, r in body["rules"].items()
    }
    fees = FeeSchedule(Decimal(body["fees"]["maker"]), Decimal(body["fees"]["taker"]))
    return VenueCapabilities(body["exchange"], fees, rules, client_id_max_length=int(body["client_id_max_length"]))


def load_capabilities(path: Path, symbols: Sequence[str] = ()) -> VenueCapabilities:
    """The cached rules for ``symbols`` (all when empty); a missing file or symbol says how to get it."""
    if not path.exists():
        raise ConfigError(
            f"markets file {path} does not exist; run `bot4 markets sync` where the exchange is reachable"
        )
    caps = capabilities_from_json(path.read_bytes())
    missing = [s for s in symbols if s not in caps.rules]
    if missing:
        raise ConfigError(
            f"markets file {path} has no rules for {missing} (it has {sorted(caps.rules)}); "
            "add them with `bot4 markets sync --symbol ...`"
        )
    if not symbols:
        return caps
    return VenueCapabilities(
        caps.exchange, caps.fees, {s: caps.rules[s] for s in symbols}, client_id_max_length=caps.client_id_max_length
    )


def fetch_capabilities(exchange: str, symbols: Sequence[str], api_url_override: str | None = None) -> VenueCapabilities:
    """Load the exchange's markets through ccxt (public endpoints only, no keys) and keep ``symbols``.

    Binance, Kraken and Coinbase (Advanced Trade): the exchanges of :data:`~execution.ccxt_venue.EXCHANGE_PROFILES`.
    """
    # ccxt (1.5-2 s to import) only here: the flows read the markets file and never sync it.
    from execution.ccxt_venue import EXCHANGE_PROFILES

    if exchange not in EXCHANGE_PROFILES:
        raise ConfigError(f"markets sync supports {sorted(EXCHANGE_PROFILES)}, not {exchange!r}")
    return asyncio.run(_fetch(exchange, symbols, api_url_override))


async def _fetch(exchange: str, symbols: Sequence[str], api_url_override: str | None) -> VenueCapabilities:
    import ccxt
    import ccxt.async_support

    from execution.ccxt_venue import EXCHANGE_PROFILES, _number, _rewrite, _rules

    client: Any = getattr(ccxt.async_support, exchange)(
        {"options": dict(EXCHANGE_PROFILES[exchange].options), "has": {"fetchCurrencies": False}, "timeout": 10_000}
    )
    if api_url_override is not None:
        client.urls["api"] = _rewrite(client.urls["api"], api_url_override.rstrip("/"))
    try:
        markets: Mapping[str, Any] = await client.load_markets()
        decimal_places = client.precisionMode == ccxt.DECIMAL_PLACES
    finally:
        await client.close()
    unknown = [s for s in symbols if s not in markets]
    if unknown:
        raise ConfigError(f"{exchange} does not list {unknown} as spot markets ({len(markets)} listed)")
    rules = {s: _rules(markets[s], decimal_places) for s in symbols}
    first = markets[symbols[0]]
    fees = FeeSchedule(_number(first.get("maker"), "maker fee"), _number(first.get("taker"), "taker fee"))
    profile = EXCHANGE_PROFILES[exchange]
    return VenueCapabilities(
        exchange,
        fees,
        rules,
        client_id_max_length=profile.client_id_max_length,
        fetch_order_by_client_id=profile.lookup != "scan_recent_orders",
    )
