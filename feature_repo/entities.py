"""The entity every feature belongs to: one instrument, keyed ``exchange:SYMBOL``."""

from feast import Entity, ValueType

symbol = Entity(
    name="symbol",
    join_keys=["symbol"],
    value_type=ValueType.STRING,
    description="instrument key exchange:SYMBOL, e.g. binance:BTC/USDT (the Kafka key of md.* and features.v1)",
)
