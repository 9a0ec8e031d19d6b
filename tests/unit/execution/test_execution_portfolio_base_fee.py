"""A fee charged in the base currency leaves the position smaller, as it leaves the exchange account.

Found by the exchange-fault chaos test (tests/chaos/test_exchange_faults.py): Binance charges a buy's
commission in the asset bought, the portfolio kept the whole amount, and every exit then asked the
exchange to sell more than the account held ("-2010 Account has insufficient balance").
"""

from __future__ import annotations

from core.events import Side
from execution.portfolio import Portfolio
from tests.unit.execution._exec_builders import ACCOUNT, d
from tests.unit.execution.test_execution_portfolio import fill


def test_buy_with_its_fee_in_the_base_currency_holds_the_amount_less_the_fee_and_can_sell_exactly_that() -> None:
    pf = Portfolio(ACCOUNT, d(1_000))
    pf.apply_fill(fill(Side.BUY, "100", "1", "0.001", fee_currency="BTC"))
    held = pf.holdings()["binance:BTC/USDT"]
    assert held.amount == d("0.999")  # what the exchange account holds after its commission
    assert pf.cash == d(900)  # the whole fill was paid
    assert pf.fees == d("0.1") and pf.equity == d("999.9")  # the fee's value, at the fill price
    pf.apply_fill(fill(Side.SELL, "110", "0.999", "0.1098", n=2))  # a sell's fee in the quote currency
    assert pf.holdings()["binance:BTC/USDT"].amount == 0
    assert pf.cash == d(900) + d("109.89") - d("0.1098")
    assert pf.equity == pf.cash
    assert pf.equity == d(1_000) + pf.realized_pnl - pf.fees  # the books' identity holds
