"""Warm start: train an instrument's models on a point-in-time training set before it goes live.

The training set is a pandas DataFrame shaped like Feast's ``get_historical_features`` result:
one row per bar with an ``event_timestamp`` (the bar end; naive values are read as UTC, as Feast
returns them from PostgreSQL), optionally a ``symbol`` column (rows of other instruments are
ignored) and feature columns named as in :data:`features.schema.FEATURES` (NaN = missing). Extra
columns are ignored; missing feature columns are missing inputs.

A row at ``t`` is labelled, exactly as live, by the first row at or after ``t + H`` bars (its
``bar_close``); rows without a later row, a close, or outside the dead zone rule get no label. The
models learn in time order; nothing is scored (warm-start rows are training, not evaluation).
Warm start must come before the first live vector, and the training rows should end before the
first live bar, which is the caller's point-in-time responsibility.

>>> import pandas as pd
>>> from models.config import ModelsConfig
>>> from models.engine import InstrumentModels
>>> frame = pd.DataFrame({"event_timestamp": pd.date_range("2021-05-01", periods=4, freq="1min", tz="UTC"),
...                       "bar_close": [100.0, 101.0, 102.0, 101.0]})
>>> im = InstrumentModels("binance:BTC/USDT", ModelsConfig(models=("majority",), horizon=1, dead_zone=0.0))
>>> warm_start(im, frame)
3
>>> round(im.slots[0].predict({}), 3)
0.6
"""

from __future__ import annotations

import math
from bisect import bisect_left
from datetime import timedelta

import pandas as pd

from core.symbols import timeframe_seconds
from features.schema import FEATURE_NAMES, FeatureValue
from models.engine import InstrumentModels
from models.inputs import finite, model_inputs


def warm_start(models: InstrumentModels, frame: pd.DataFrame, timeframe: str = "1m") -> int:
    """Learn every model of ``models`` from ``frame`` in time order; returns the labels learned.

    Raises ``ValueError`` if ``models`` has already seen a live vector or ``frame`` has no
    ``event_timestamp`` column.
    """
    if models.has_seen_vectors:
        raise ValueError(f"warm start of {models.key} must come before its first live vector")
    if "event_timestamp" not in frame.columns:
        raise ValueError(f"training frame needs an event_timestamp column, has {list(frame.columns)}")
    if "symbol" in frame.columns:
        frame = frame[frame["symbol"] == models.key]
    if frame.empty or not models.slots:
        return 0
    times = pd.to_datetime(frame["event_timestamp"])
    times = times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")
    columns = [c for c in FEATURE_NAMES if c in frame.columns]
    ordered = frame.assign(event_timestamp=times).sort_values("event_timestamp", kind="stable")
    ordered = ordered.drop_duplicates("event_timestamp", keep="last")
    stamps = [ts.to_pydatetime() for ts in ordered["event_timestamp"]]
    rows: list[dict[str, FeatureValue]] = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in ordered[columns].to_dict("records")
    ]
    closes = [finite(r.get("bar_close")) for r in rows]
    step = timedelta(seconds=timeframe_seconds(timeframe) * models.config.horizon)
    learned = 0
    for i, row in enumerate(rows):
        close = closes[i]
        j = bisect_left(stamps, stamps[i] + step)
        if close is None or close <= 0 or j >= len(rows):
            continue
        later = closes[j]
        if later is None or later <= 0:
            continue
        label = models.labeler.label(close, later)
        if label is None:
            continue
        x = model_inputs(row)
        for slot in models.slots:
            slot.model.learn_one(x, label)
        learned += 1
    return learned
