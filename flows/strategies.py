"""The strategies a trading flow can run, by name (``BOT4_TRADING__STRATEGIES``).

Apart from :mod:`flows.backtest` so that the Kafka trading flow, which needs only this registry,
starts without the backtest's replay readers (pyarrow) and report builder.

>>> sorted(STRATEGIES)
['ema_cross_rsi', 'model_fusion']
>>> [type(s).__name__ for s in strategies_for(["ema_cross_rsi"], "acct")()]
['EmaCrossRsi']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from models.strategy import EmaCrossRsi, ModelStrategy, Strategy

#: Strategies by name; each builds fresh per-instrument strategy objects for an account.
STRATEGIES: dict[str, Callable[[str], Strategy]] = {
    "ema_cross_rsi": EmaCrossRsi,
    "model_fusion": ModelStrategy,
}


def strategies_for(names: Sequence[str], account: str) -> Callable[[], list[Strategy]]:
    """A factory of the named strategies; an unknown name is refused with the known ones."""
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; known: {sorted(STRATEGIES)}")
    return lambda: [STRATEGIES[n](account) for n in names]
