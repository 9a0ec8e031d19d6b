"""Binance spot order behaviour for the local exchange (``tests/support/exchange_server.py``).

A test double of what the venue does with orders, answering in Binance's documented formats
(``POST /api/v3/order`` with ``newOrderRespType`` ACK / RESULT / FULL, ``GET /api/v3/order``,
``DELETE /api/v3/order``, ``GET /api/v3/openOrders``, ``GET /api/v3/account``,
``GET /api/v3/myTrades``). Nothing here invents a price:

- the symbol's filters come from the RECORDED ``exchangeInfo`` (``PRICE_FILTER``, ``LOT_SIZE``,
  ``MARKET_LOT_SIZE``, ``MIN_NOTIONAL``); a breach answers ``-1013 "Filter failure: <NAME>"``;
- an order is matched at submission against the RECORDED book the server serves at that moment
  (``depth``: recorded snapshot plus the recorded diffs published so far): a market order walks the
  opposite side, a limit order takes the levels at or better than its price and rests the rest
  (``NEW`` / ``PARTIALLY_FILLED``); a market order the book cannot fill ends ``EXPIRED`` with what
  it got. Liquidity taken is not removed from the recorded book (the next recorded diff would
  rewrite those levels anyway) and resting orders do not fill later (no trade-through matching);
- MIN_NOTIONAL of a market order is judged on its book-walk notional (Binance uses a 5-minute
  average price that is not recorded);
- ``PERCENT_PRICE`` is not checked: it needs that same unrecorded average price;
- commission: Binance's standard spot rate (0.1 %, the rate ccxt also declares), charged in the
  asset received and printed to 8 decimals;
- balances are what the test funds (:meth:`BinanceSpotAccount.fund`); an order the free balance
  cannot pay answers ``-2010 "Account has insufficient balance for requested action."``;
- ``newClientOrderId``: Binance refuses an id already used by an order that is not FILLED with
  ``-2010 "Duplicate order sent."`` (its documentation: "Orders with the same newClientOrderID can
  be accepted only when the previous one is filled"), which is why a client must never resend.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

COMMISSION_RATE = Decimal("0.001")
_EIGHT = Decimal("0.00000001")
_ZERO = Decimal(0)


class BinanceReject(Exception):
    """A Binance error answer: HTTP ``status`` with body ``{"code": code, "msg": msg}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status, self.code, self.msg = status, code, msg

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def _text(value: Decimal) -> str:
    return f"{value.quantize(_EIGHT, rounding=ROUND_HALF_UP):f}"


@dataclass
class SpotOrder:
    """The venue's record of one order."""

    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str | None
    orig_qty: Decimal
    price: Decimal
    time_ms: int
    status: str = "NEW"
    executed_qty: Decimal = _ZERO
    quote_qty: Decimal = _ZERO
    locked: Decimal = _ZERO  # funds held for the resting remainder (quote for buys, base for sells)
    update_ms: int = 0
    fills: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    def result_fields(self) -> dict[str, Any]:
        """The fields Binance puts in a RESULT response (and, with more, in a query response)."""
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": _text(self.price),
            "origQty": _text(self.orig_qty),
            "executedQty": _text(self.executed_qty),
            "cummulativeQuoteQty": _text(self.quote_qty),
            "status": self.status,
            "timeInForce": self.time_in_force or "GTC",
            "type": self.type,
            "side": self.side,
        }

    def query_body(self) -> dict[str, Any]:
        """``GET /api/v3/order`` / ``openOrders`` entry."""
        body = self.result_fields()
        body.update(
            {
                "stopPrice": "0.00000000",
                "icebergQty": "0.00000000",
                "time": self.time_ms,
                "updateTime": self.update_ms or self.time_ms,
                "isWorking": True,
                "workingTime": self.time_ms,
                "origQuoteOrderQty": "0.00000000",
                "selfTradePreventionMode": "EXPIRE_MAKER",
            }
        )
        return body

    def new_order_body(self, resp_type: str) -> dict[str, Any]:
        """``POST /api/v3/order`` answer in the requested ``newOrderRespType``."""
        ack = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "transactTime": self.time_ms,
        }
        if resp_type == "ACK":
            return ack
        body = {**ack, **self.result_fields()}
        body.update({"workingTime": self.time_ms, "selfTradePreventionMode": "EXPIRE_MAKER"})
        if resp_type == "FULL":
            body["fills"] = [
                {k: f[k] for k in ("price", "qty", "commission", "commissionAsset", "tradeId")} for f in self.fills
            ]
        return body


@dataclass(frozen=True)
class SymbolRules:
    """What the recorded ``exchangeInfo`` says about one symbol."""

    base: str
    quote: str
    filters: dict[str, dict[str, Any]]
    order_types: tuple[str, ...]


def symbol_rules(exchange_info: dict[str, Any]) -> dict[str, SymbolRules]:
    return {
        s["symbol"]: SymbolRules(
            s["baseAsset"],
            s["quoteAsset"],
            {f["filterType"]: f for f in s["filters"]},
            tuple(s["orderTypes"]),
        )
        for s in exchange_info["symbols"]
    }


def _off_grid(value: Decimal, minimum: Decimal, step: Decimal) -> bool:
    return step > 0 and (value - minimum) % step != 0


class BinanceSpotAccount:
    """One spot account's balances, orders and trades at the local venue."""

    def __init__(self, rules: dict[str, SymbolRules], first_trade_ids: dict[str, int]) -> None:
        self.rules = rules
        self.free: dict[str, Decimal] = {}
        self.locked: dict[str, Decimal] = {}
        self.orders: list[SpotOrder] = []
        self.trades: list[dict[str, Any]] = []
        self._next_order_id = 1
        self._next_trade_id = dict(first_trade_ids)

    def fund(self, asset: str, amount: str) -> None:
        self.free[asset] = self.free.get(asset, _ZERO) + Decimal(amount)

    def by_client_id(self, symbol: str, client_order_id: str) -> SpotOrder | None:
        found = [o for o in self.orders if o.symbol == symbol and o.client_order_id == client_order_id]
        return found[-1] if found else None

    def find(self, symbol: str, order_id: str | None, client_order_id: str | None) -> SpotOrder | None:
        if order_id is not None:
            return next((o for o in self.orders if o.symbol == symbol and str(o.order_id) == order_id), None)
        if client_order_id is not None:
            return self.by_client_id(symbol, client_order_id)
        raise BinanceReject(
            400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
        )

    # -- new order ------------------------------------------------------------------------------

    def new_order(self, params: dict[str, str], book: dict[str, Any]) -> SpotOrder:
        """Validate, match against ``book`` (a recorded depth answer) and store the order."""
        symbol = params.get("symbol", "")
        rules = self.rules.get(symbol)
        if rules is None:
            raise BinanceReject(400, -1121, "Invalid symbol.")
        side, otype = params.get("side", ""), params.get("type", "")
        if side not in ("BUY", "SELL"):
            raise BinanceReject(400, -1116, "Invalid side.")
        if otype not in ("MARKET", "LIMIT") or otype not in rules.order_types:
            raise BinanceReject(400, -1116, "Invalid orderType.")
        qty = Decimal(params.get("quantity", "0"))
        price = Decimal(params["price"]) if otype == "LIMIT" and "price" in params else _ZERO
        if otype == "LIMIT" and price <= 0:
            raise BinanceReject(400, -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
        self._check_filters(rules, otype, qty, price)
        buy = side == "BUY"
        levels = book["asks"] if buy else book["bids"]
        takes = self._walk(levels, qty, price if otype == "LIMIT" else None, buy)
        notional = qty * price if otype == "LIMIT" else sum((p * q for p, q in takes), _ZERO)
        min_notional = rules.filters.get("MIN_NOTIONAL")
        applies = min_notional is not None and (otype == "LIMIT" or min_notional.get("applyToMarket", True))
        if applies and min_notional is not None and notional < Decimal(min_notional["minNotional"]):
            raise BinanceReject(400, -1013, "Filter failure: MIN_NOTIONAL")
        cid = params.get("newClientOrderId", "")
        previous = self.by_client_id(symbol, cid)
        if previous is not None and previous.status != "FILLED":
            raise BinanceReject(400, -2010, "Duplicate order sent.")
        # Funds: a buy needs the quote it pays (a resting remainder at its limit price), a sell the base.
        if buy:
            taken_cost = sum((p * q for p, q in takes), _ZERO)
            rest = qty - sum((q for _, q in takes), _ZERO)
            need, asset = taken_cost + (rest * price if otype == "LIMIT" else _ZERO), rules.quote
        else:
            need, asset = qty, rules.base
        if need > self.free.get(asset, _ZERO):
            raise BinanceReject(400, -2010, "Account has insufficient balance for requested action.")
        now = int(time.time() * 1000)
        order = SpotOrder(
            symbol,
            self._next_order_id,
            cid,
            side,
            otype,
            params.get("timeInForce") if otype == "LIMIT" else None,
            qty,
            price,
            now,
        )
        self._next_order_id += 1
        for fill_price, fill_qty in takes:
            self._fill(order, rules, fill_price, fill_qty, now)
        if order.executed_qty == qty:
            order.status = "FILLED"
        elif otype == "MARKET":
            order.status = "EXPIRED"  # the book could not fill it all
        else:
            order.status = "PARTIALLY_FILLED" if order.executed_qty else "NEW"
            self._lock(order, rules)
        self.orders.append(order)
        return order

    def _check_filters(self, rules: SymbolRules, otype: str, qty: Decimal, price: Decimal) -> None:
        lot = rules.filters.get("LOT_SIZE")
        if lot is not None:
            lo, hi, step = Decimal(lot["minQty"]), Decimal(lot["maxQty"]), Decimal(lot["stepSize"])
            if qty < lo or qty > hi or _off_grid(qty, lo, step):
                raise BinanceReject(400, -1013, "Filter failure: LOT_SIZE")
        market_lot = rules.filters.get("MARKET_LOT_SIZE")
        if otype == "MARKET" and market_lot is not None:
            lo, hi, step = Decimal(market_lot["minQty"]), Decimal(market_lot["maxQty"]), Decimal(market_lot["stepSize"])
            if qty < lo or (hi > 0 and qty > hi) or _off_grid(qty, lo, step):
                raise BinanceReject(400, -1013, "Filter failure: MARKET_LOT_SIZE")
        pf = rules.filters.get("PRICE_FILTER")
        if otype == "LIMIT" and pf is not None:
            lo, hi, tick = Decimal(pf["minPrice"]), Decimal(pf["maxPrice"]), Decimal(pf["tickSize"])
            if price < lo or (hi > 0 and price > hi) or _off_grid(price, lo, tick):
                raise BinanceReject(400, -1013, "Filter failure: PRICE_FILTER")

    @staticmethod
    def _walk(levels: list[list[str]], qty: Decimal, limit: Decimal | None, buy: bool) -> list[tuple[Decimal, Decimal]]:
        out: list[tuple[Decimal, Decimal]] = []
        left = qty
        for price_text, shown_text in levels:
            if left <= 0:
                break
            price, shown = Decimal(price_text), Decimal(shown_text)
            if limit is not None and (price > limit if buy else price < limit):
                break
            take = min(shown, left)
            out.append((price, take))
            left -= take
        return out

    def _fill(self, order: SpotOrder, rules: SymbolRules, price: Decimal, qty: Decimal, now: int) -> None:
        trade_id = self._next_trade_id.get(order.symbol, 1)
        self._next_trade_id[order.symbol] = trade_id + 1
        quote_qty = price * qty
        buy = order.side == "BUY"
        commission = (qty if buy else quote_qty) * COMMISSION_RATE
        commission_asset = rules.base if buy else rules.quote
        free = self.free
        if buy:
            free[rules.quote] = free.get(rules.quote, _ZERO) - quote_qty
            free[rules.base] = free.get(rules.base, _ZERO) + qty - commission
        else:
            free[rules.base] = free.get(rules.base, _ZERO) - qty
            free[rules.quote] = free.get(rules.quote, _ZERO) + quote_qty - commission
        order.executed_qty += qty
        order.quote_qty += quote_qty
        order.update_ms = now
        fill = {
            "price": _text(price),
            "qty": _text(qty),
            "commission": _text(commission),
            "commissionAsset": commission_asset,
            "tradeId": trade_id,
        }
        order.fills.append(fill)
        self.trades.append(
            {
                "symbol": order.symbol,
                "id": trade_id,
                "orderId": order.order_id,
                "orderListId": -1,
                "price": fill["price"],
                "qty": fill["qty"],
                "quoteQty": _text(quote_qty),
                "commission": fill["commission"],
                "commissionAsset": commission_asset,
                "time": now,
                "isBuyer": buy,
                "isMaker": False,
                "isBestMatch": True,
            }
        )

    def _lock(self, order: SpotOrder, rules: SymbolRules) -> None:
        rest = order.orig_qty - order.executed_qty
        asset = rules.quote if order.side == "BUY" else rules.base
        amount = rest * order.price if order.side == "BUY" else rest
        self.free[asset] = self.free.get(asset, _ZERO) - amount
        self.locked[asset] = self.locked.get(asset, _ZERO) + amount
        order.locked = amount

    # -- cancel, reads --------------------------------------------------------------------------

    def cancel(self, symbol: str, order_id: str | None, client_order_id: str | None) -> SpotOrder:
        order = self.find(symbol, order_id, client_order_id)
        if order is None or not order.is_open:
            raise BinanceReject(400, -2011, "Unknown order sent.")
        rules = self.rules[symbol]
        asset = rules.quote if order.side == "BUY" else rules.base
        self.locked[asset] -= order.locked
        self.free[asset] = self.free.get(asset, _ZERO) + order.locked
        order.locked = _ZERO
        order.status = "CANCELED"
        order.update_ms = int(time.time() * 1000)
        return order

    def account_body(self) -> dict[str, Any]:
        assets = sorted(set(self.free) | set(self.locked))
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": "0.00100000",
                "taker": "0.00100000",
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": int(time.time() * 1000),
            "accountType": "SPOT",
            "balances": [
                {"asset": a, "free": _text(self.free.get(a, _ZERO)), "locked": _text(self.locked.get(a, _ZERO))}
                for a in assets
            ],
            "permissions": ["SPOT"],
        }

    def my_trades(self, symbol: str, order_id: str | None, limit: int) -> list[dict[str, Any]]:
        rows = [t for t in self.trades if t["symbol"] == symbol and (order_id is None or str(t["orderId"]) == order_id)]
        return rows[-limit:]
