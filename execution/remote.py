"""The account's orders and portfolio as the trading flow sees them when execution runs elsewhere.

When the order manager and its venue live in their own process (``flows.execution_run``, fed by
``orders.v1``), the trading flow's risk gate still has to judge every intent against the account as
it stands: its positions, its cash and the orders in flight. :class:`RemoteExecution` keeps that
picture from what comes back on ``fills.v1``:

- an order the gate approved counts as open from the moment it is approved (it is on its way);
- order events move it (an ``accept``, a partial fill, a ``cancel``...); a terminal one removes it;
- fills go into the :class:`~execution.portfolio.Portfolio` once each (by fill id), exactly as the
  order manager books them in-process, so positions, cash, fees and PnL agree with execution's.

It answers the few calls the trading flow's account step makes of an order manager (``submit``,
``cancel_all``, ``pump``, ``drain``, ``view``, ``portfolio``), so the step's code is the same in
both deployments. ``submit`` and ``cancel_all`` do not reach a venue: they queue the instruction
for ``orders.v1`` (:meth:`take_instructions`), and only the execution process submits.

>>> from decimal import Decimal
>>> remote = RemoteExecution(Portfolio("paper", Decimal(1000)))
>>> remote.view().equity, remote.pump(), remote.drain()
(Decimal('1000'), 0, [])
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.fills import Fill, OrderEvent, OrderStatus
from core.orders import ApprovedOrder, CancelAllOrders
from execution.manager import SubmitResult
from execution.portfolio import Portfolio
from risk.portfolio import OpenOrder, PortfolioView
from risk.venue_calls import VenueCallOutcome

Instruction = ApprovedOrder | CancelAllOrders


@dataclass(slots=True)
class _InFlight:
    order: ApprovedOrder
    status: OrderStatus
    remaining: Decimal


class RemoteExecution:
    """See the module docstring. Pickle-safe (part of the account step's recovery snapshot)."""

    def __init__(self, portfolio: Portfolio) -> None:
        self.portfolio = portfolio
        self._orders: dict[str, _InFlight] = {}
        self._open: dict[str, _InFlight] = {}
        self._fill_ids: set[str] = set()
        self._instructions: list[Instruction] = []

    # -- what the account step asks of an order manager -------------------------------------------

    def submit(self, order: ApprovedOrder) -> SubmitResult:
        """Queue ``order`` for ``orders.v1`` unless its client order id was already sent."""
        cid = order.client_order_id
        known = self._orders.get(cid)
        if known is not None:
            return SubmitResult(cid, known.status, duplicate=True)
        if order.intent.account != self.portfolio.account:
            raise ValueError(
                f"order {cid} is for account {order.intent.account!r}; this account is {self.portfolio.account!r}"
            )
        flight = _InFlight(order, OrderStatus.PENDING_SUBMIT, order.amount)
        self._orders[cid] = self._open[cid] = flight
        self._instructions.append(order)
        return SubmitResult(cid, flight.status)

    def cancel_all(self, command: CancelAllOrders) -> list[str]:
        """Queue the cancel-all for execution; returns the orders it will reach, as known here."""
        self._instructions.append(command)
        return [cid for cid, f in self._open.items() if not (command.keep_reduce_only and f.order.intent.reduce_only)]

    def pump(self) -> int:
        """Nothing arrives by polling: execution's reports come on ``fills.v1`` (:meth:`on_fill`,
        :meth:`on_order_event`). Returns 0, the number of reports applied here."""
        return 0

    def drain(self) -> list[OrderEvent | Fill]:
        """Order events and fills are published by the execution process, not by this mirror."""
        return []

    def drain_outcomes(self) -> list[VenueCallOutcome]:
        """Venue calls are made in the execution process; this side makes none to report."""
        return []

    def view(self) -> PortfolioView:
        return self.portfolio.view(self.open_orders())

    def open_orders(self) -> list[OpenOrder]:
        """Orders approved and not yet terminal, valued like the order manager values them (a market
        order at the instrument's mark, left out while there is none)."""
        holdings = self.portfolio.holdings()
        out = []
        for cid, flight in self._open.items():
            intent = flight.order.intent
            price = flight.order.price
            if price is None:
                holding = holdings.get(intent.key)
                if holding is None or not holding.mark:
                    continue
                price = holding.mark
            out.append(
                OpenOrder(
                    cid,
                    intent.exchange,
                    intent.symbol,
                    intent.side,
                    intent.order_type,
                    price,
                    flight.remaining,
                    intent.reduce_only,
                )
            )
        return out

    # -- what comes back from execution ----------------------------------------------------------

    def on_order_event(self, event: OrderEvent) -> None:
        """Move the order to ``event``'s status; an order this account never approved is ignored
        (another deployment's, or history older than this state)."""
        flight = self._orders.get(event.client_order_id)
        if flight is None:
            return
        flight.status = event.status
        flight.remaining = event.remaining
        if event.status.is_terminal:
            self._open.pop(event.client_order_id, None)

    def on_fill(self, fill: Fill) -> bool:
        """Book ``fill`` once (a redelivered fill id is skipped); returns whether it was new."""
        if fill.fill_id in self._fill_ids or fill.account != self.portfolio.account:
            return False
        self._fill_ids.add(fill.fill_id)
        self.portfolio.apply_fill(fill)
        return True

    def take_instructions(self) -> list[Instruction]:
        """Orders and cancel-alls queued since the last call, in order, for ``orders.v1``."""
        out, self._instructions = self._instructions, []
        return out
