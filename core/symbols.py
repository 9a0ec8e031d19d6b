"""Instrument keys: ``exchange:SYMBOL`` with ccxt's unified symbol.

>>> instrument_key("binance", "BTC/USDT")
'binance:BTC/USDT'
>>> parse_key("binance:BTC/USDT")
('binance', 'BTC/USDT')
"""

from __future__ import annotations

from functools import cache


def instrument_key(exchange: str, symbol: str) -> str:
    return f"{exchange}:{symbol}"


def parse_key(key: str) -> tuple[str, str]:
    exchange, sep, symbol = key.partition(":")
    if not sep or not exchange or not symbol:
        raise ValueError(f"instrument key {key!r} is not of the form 'exchange:SYMBOL'")
    return exchange, symbol


@cache
def timeframe_seconds(timeframe: str) -> int:
    """Seconds in a ccxt timeframe string.

    >>> timeframe_seconds("5m"), timeframe_seconds("1h"), timeframe_seconds("1d")
    (300, 3600, 86400)
    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    number, unit = timeframe[:-1], timeframe[-1:]
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise ValueError(f"timeframe {timeframe!r} is not like '1m', '5m', '1h', '1d'")
    return int(number) * units[unit]
