"""PortfolioView as it was before the aggregation was rewritten for speed (commit 32f0e74), kept as
a test oracle: ``test_risk_portfolio_reference.py`` requires the same problem, totals, exposures
and order lookups, down to the Decimal exponent. Do not optimise this copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from types import MappingProxyType

from core.events import Side
from risk.market import sane_number, sane_positive
from risk.portfolio import FLAT, Exposure, OpenOrder, Position

_ZERO = Decimal(0)


class PortfolioView:
    """Read-only view of one account; see the module docstring for how exposure is counted.

    Bad numbers (NaN, infinities, absurd magnitudes, negative remaining amounts) do not raise: they
    are reported by :attr:`problem`, and the gate denies every order while a problem stands.
    """

    __slots__ = (
        "_account",
        "_client_ids",
        "_equity",
        "_exposures",
        "_gross",
        "_net_long",
        "_net_short",
        "_open_orders",
        "_orders_by_key",
        "_positions",
        "_problem",
    )

    def __init__(
        self,
        account: str,
        equity: Decimal,
        positions: Iterable[Position] = (),
        open_orders: Iterable[OpenOrder] = (),
    ) -> None:
        self._account = account
        self._equity = equity
        position_list = tuple(positions)
        self._positions: Mapping[str, Position] = MappingProxyType({p.key: p for p in position_list})
        duplicated = len(self._positions) != len(position_list)
        self._open_orders = tuple(open_orders)
        by_key: dict[str, list[OpenOrder]] = {}
        for order in self._open_orders:
            by_key.setdefault(order.key, []).append(order)
        self._orders_by_key: Mapping[str, tuple[OpenOrder, ...]] = MappingProxyType(
            {key: tuple(orders) for key, orders in by_key.items()}
        )
        self._client_ids = frozenset(o.client_order_id for o in self._open_orders)
        self._exposures: Mapping[str, Exposure] = MappingProxyType({})
        self._gross = self._net_long = self._net_short = _ZERO
        self._problem = "two positions for one instrument" if duplicated else self._find_problem()
        if self._problem is None:
            self._aggregate()

    def _find_problem(self) -> str | None:
        for p in self._positions.values():
            if not sane_number(p.amount):
                return f"position {p.key} amount {p.amount} is not a finite number"
            if not sane_positive(p.mark_price):
                return f"position {p.key} mark price {p.mark_price} must be a finite number > 0"
        for o in self._open_orders:
            if not sane_number(o.remaining) or o.remaining < 0:
                return f"open order {o.client_order_id} remaining {o.remaining} must be a finite number >= 0"
            if not sane_positive(o.price):
                return f"open order {o.client_order_id} price {o.price} must be a finite number > 0"
        return None

    def _aggregate(self) -> None:
        exposures: dict[str, Exposure] = {}
        for key in self._positions.keys() | self._orders_by_key.keys():
            position = self._positions.get(key)
            orders = self._orders_by_key.get(key, ())
            buys = sum((o.remaining for o in orders if o.side is Side.BUY), _ZERO)
            sells = sum((o.remaining for o in orders if o.side is Side.SELL), _ZERO)
            r_buys = sum((o.remaining for o in orders if o.side is Side.BUY and o.reduce_only), _ZERO)
            r_sells = sum((o.remaining for o in orders if o.side is Side.SELL and o.reduce_only), _ZERO)
            # An instrument with orders but no position is valued at its highest order price.
            mark = position.mark_price if position is not None else max(o.price for o in orders)
            amount = position.amount if position is not None else _ZERO
            exposures[key] = Exposure(amount, buys, sells, r_buys, r_sells, mark)
        self._exposures = MappingProxyType(exposures)
        self._gross = sum((e.gross_at(e.mark) for e in exposures.values()), _ZERO)
        self._net_long = sum((e.long_worst * e.mark for e in exposures.values()), _ZERO)
        self._net_short = sum((e.short_worst * e.mark for e in exposures.values()), _ZERO)

    @property
    def account(self) -> str:
        return self._account

    @property
    def equity(self) -> Decimal:
        """Mark-to-market account value in quote currency."""
        return self._equity

    @property
    def positions(self) -> Mapping[str, Position]:
        """Positions by ``exchange:SYMBOL`` key (read-only)."""
        return self._positions

    @property
    def open_orders(self) -> tuple[OpenOrder, ...]:
        return self._open_orders

    @property
    def problem(self) -> str | None:
        """Why positions or open orders cannot be valued, or None."""
        return self._problem

    @property
    def gross_exposure(self) -> Decimal:
        """Sum over instruments of worst-case absolute value, at each instrument's mark."""
        return self._gross

    @property
    def net_long(self) -> Decimal:
        """Signed sum of values if every open buy fills."""
        return self._net_long

    @property
    def net_short(self) -> Decimal:
        """Signed sum of values if every open sell fills."""
        return self._net_short

    @property
    def net_exposure(self) -> Decimal:
        """Worst-case absolute net value: ``max(|net_long|, |net_short|)``."""
        return max(abs(self._net_long), abs(self._net_short))

    def exposure(self, key: str) -> Exposure:
        """The instrument's exposure, or :data:`FLAT` when the account has nothing in it."""
        return self._exposures.get(key, FLAT)

    def orders_for(self, key: str) -> tuple[OpenOrder, ...]:
        """Open orders in one instrument."""
        return self._orders_by_key.get(key, ())

    def has_order(self, client_order_id: str) -> bool:
        """True when an open order already uses ``client_order_id``."""
        return client_order_id in self._client_ids
