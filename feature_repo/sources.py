"""Where the 1-minute feature rows come from, per environment (``BOT4_FEAST_ENV``).

- ``local`` (embedded default): a parquet file under ``BOT4_FEAST_DATA_DIR``, appended by pushes.
- ``dev`` / ``prod``: the ``feature_rows`` table of PostgreSQL, written by the features flow
  (COPY, idempotent); pushes then go to the online store only (see NOTES.md on PushMode).
"""

import os

from feast import FileSource, PushSource
from feast.data_format import ParquetFormat
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

from features.schema import SCHEMA_VERSION

ENV = os.environ.get("BOT4_FEAST_ENV", "local")
TIMEFRAME = "1m"

if ENV == "local":
    bars_1m_batch = FileSource(
        name="feature_rows_1m_file",
        path=os.path.join(os.environ.get("BOT4_FEAST_DATA_DIR", "out/feast"), "feature_rows_1m.parquet"),
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
    )
else:
    bars_1m_batch = PostgreSQLSource(
        name="feature_rows_1m_pg",
        query=(f"SELECT * FROM feature_rows WHERE timeframe = '{TIMEFRAME}' AND schema_version = {SCHEMA_VERSION}"),
        timestamp_field="event_timestamp",
    )

bars_1m_push = PushSource(name="bars_1m_push", batch_source=bars_1m_batch)
