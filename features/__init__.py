"""Incremental feature logic: plain classes with ``update`` / ``snapshot`` / ``restore``.

- :mod:`features.bars`: event-time bars from trades (watermark, late trades reported, explicit
  empty bars), exchange candles as bars, volume and dollar bars;
- :mod:`features.indicators`: streaming indicators equal to TA-Lib's;
- :mod:`features.book`: the L2 book from a snapshot plus sequenced deltas, and its features;
- :mod:`features.flow`: trade-flow features over an event-time window;
- :mod:`features.schema`: the single list of feature names, types, versions and ranges;
- :mod:`features.engine`: the per-instrument engine composing all of them into feature vectors.

No Bytewax, no I/O: the Bytewax operators (``features/operators.py``) wrap the engine. This
module imports nothing, so ``import features.schema`` stays light for Feast and the models.
"""
