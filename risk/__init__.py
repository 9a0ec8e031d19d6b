"""Bot4 risk engine: pure, synchronous, no I/O. Every order intent is approved or denied here.

- ``risk.gate``: ``evaluate(intent, portfolio, market, limits, state)`` -> ApprovedOrder | OrderDenied
- ``risk.breakers``: circuit breakers and the ACTIVE / REDUCING / HALTED state machine, kill switch
- ``risk.sizing``: fixed fraction, ATR volatility target, fractional Kelly, VaR / CVaR cap
- ``risk.engine``: one account's gate and state machine kept in step, returning records
- ``risk.decisions``: records for ``risk.decisions.v1`` and ``orders.v1``
- ``risk.config``, ``risk.portfolio``, ``risk.market``, ``risk.throttle``: limits and the views the
  gate reads
"""
