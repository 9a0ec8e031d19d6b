"""Feature views, generated from ``features/schema.py`` (no feature name is typed here)."""

from datetime import timedelta

from entities import symbol
from feast import FeatureView, Field
from feast.types import Bool, Float64, Int64
from sources import bars_1m_push

from features.schema import FEATURES, SCHEMA_VERSION

_FEAST_TYPES = {"float64": Float64, "int64": Int64, "bool": Bool}

#: How long a 1-minute vector stays valid for a point-in-time join (and for an online read).
BARS_1M_TTL = timedelta(minutes=5)

bars_1m = FeatureView(
    name="bars_1m",
    entities=[symbol],
    ttl=BARS_1M_TTL,
    schema=[Field(name=spec.name, dtype=_FEAST_TYPES[spec.dtype], description=spec.description) for spec in FEATURES],
    source=bars_1m_push,
    online=True,
    tags={"schema_version": str(SCHEMA_VERSION), "timeframe": "1m"},
)
