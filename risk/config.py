"""Risk limits: frozen, strict, validated once at start-up.

Fractions are of the account's equity (``0.02`` = 2%); notionals are in the account's quote
currency (e.g. USDT). ``None`` switches a limit off, and an unsafe combination is refused here,
at start, naming the fields:

>>> RiskLimits().max_position_pct
Decimal('0.02')
>>> from pydantic import ValidationError
>>> try:
...     RiskLimits(max_position_pct=None, max_leverage=None)
... except ValidationError as err:
...     print("max_position_pct and max_leverage are both off" in str(err))
True
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Self

from pydantic import Field, model_validator

from core.config import StrictConfig

#: A fraction in (0, 1].
Fraction = Annotated[Decimal, Field(gt=0, le=1)]
#: A positive quote-currency amount.
Notional = Annotated[Decimal, Field(gt=0)]
#: A strictly positive duration.
Duration = Annotated[timedelta, Field(gt=timedelta(0))]


class BreakerLimits(StrictConfig):
    """Thresholds, cooldowns and probe settings of the circuit breakers (see ``risk.breakers``)."""

    #: Drawdown from peak equity that halts trading until a person resets it.
    max_drawdown_pct: Fraction = Decimal("0.15")
    #: Loss since the start of the UTC day (fraction of that day's first equity); REDUCING until
    #: the next UTC day. None switches it off.
    daily_loss_pct: Fraction | None = Decimal("0.05")
    #: Closed trades in a row with a loss before REDUCING; None switches it off.
    max_consecutive_losses: Annotated[int, Field(ge=1)] | None = 5
    consecutive_losses_cooldown: Duration = timedelta(hours=1)
    #: Market data older than this (for any instrument the account trades) means REDUCING.
    market_data_max_age: Duration = timedelta(seconds=30)
    market_data_cooldown: Duration = timedelta(seconds=10)
    #: Features or model output older than this means REDUCING.
    features_max_age: Duration = timedelta(minutes=5)
    features_cooldown: Duration = timedelta(seconds=30)
    #: Venue errors: over ``venue_error_window``, with at least ``venue_min_calls`` calls, an error
    #: share of ``venue_max_error_rate`` or more halts.
    venue_error_window: Duration = timedelta(seconds=60)
    venue_min_calls: Annotated[int, Field(ge=1)] = 5
    venue_max_error_rate: Fraction = Decimal("0.5")
    venue_error_cooldown: Duration = timedelta(seconds=60)
    #: Order round trip (submit to venue acknowledgement): the median of the last
    #: ``latency_samples`` above ``max_round_trip`` means REDUCING.
    max_round_trip: Duration = timedelta(seconds=2)
    latency_samples: Annotated[int, Field(ge=1)] = 10
    latency_cooldown: Duration = timedelta(seconds=30)
    #: A venue disconnect halts; after reconnecting, trading resumes once this much time has passed.
    disconnect_cooldown: Duration = timedelta(seconds=10)


class SizingLimits(StrictConfig):
    """Defaults for ``risk.sizing``: the sizer proposes within these, the gate still checks."""

    fixed_fraction: Fraction = Decimal("0.01")
    #: Volatility targeting: an adverse move of ``atr_multiple`` ATRs loses ``risk_per_trade_pct``.
    risk_per_trade_pct: Fraction = Decimal("0.005")
    atr_multiple: Annotated[Decimal, Field(gt=0)] = Decimal(2)
    #: Fractional Kelly: this share of the full Kelly bet, never above ``kelly_cap``.
    kelly_fraction: Fraction = Decimal("0.5")
    kelly_cap: Fraction = Decimal("0.02")
    #: VaR / CVaR limit on the resulting portfolio, as a fraction of equity, at ``var_confidence``.
    var_confidence: Annotated[Decimal, Field(gt=Decimal("0.5"), lt=1)] = Decimal("0.99")
    max_var_pct: Fraction = Decimal("0.02")


class RiskLimits(StrictConfig):
    """Pre-trade limits the gate checks for every order intent of one account."""

    #: Largest position in one instrument, valued at the reference price, as a fraction of equity.
    max_position_pct: Fraction | None = Decimal("0.02")
    #: Sum of absolute position values (worst case with open orders), in quote currency.
    max_gross_exposure: Notional | None = None
    #: Absolute value of the signed sum of position values (worst case), in quote currency.
    max_net_exposure: Notional | None = None
    #: Gross exposure / equity.
    max_leverage: Annotated[Decimal, Field(gt=0, le=125)] | None = Decimal(1)
    #: Largest single order, in quote currency (fat finger on size).
    max_order_notional: Notional | None = Decimal(100_000)
    #: Largest distance of a limit price (or a market order's best price) from the reference price.
    price_band_pct: Fraction | None = Decimal("0.05")
    #: Token bucket: sustained orders per second and the burst allowed on top.
    max_orders_per_second: Annotated[float, Field(gt=0)] = 10.0
    order_burst: Annotated[int, Field(ge=1)] = 20
    max_open_orders: Annotated[int, Field(ge=1)] = 50
    #: Instruments that may trade, as ``exchange:SYMBOL`` or a bare ``SYMBOL`` (any exchange);
    #: None allows every instrument the market view describes.
    allowed_symbols: frozenset[str] | None = None
    #: The reference price must be younger than this when an order is checked.
    max_market_data_age: Duration = timedelta(seconds=5)
    breakers: BreakerLimits = Field(default_factory=BreakerLimits)
    sizing: SizingLimits = Field(default_factory=SizingLimits)

    @model_validator(mode="after")
    def _refuse_unsafe_combinations(self) -> Self:
        if self.max_position_pct is None and self.max_leverage is None:
            raise ValueError(
                "unsafe limits: max_position_pct and max_leverage are both off, so one account could "
                "take unbounded risk; set at least one of them"
            )
        if self.price_band_pct is None and self.max_order_notional is None:
            raise ValueError(
                "unsafe limits: price_band_pct and max_order_notional are both off, so nothing stops a "
                "fat-finger order; set at least one of them"
            )
        if self.allowed_symbols is not None and not self.allowed_symbols:
            raise ValueError("allowed_symbols is empty, so nothing could trade; use None to allow all")
        return self
