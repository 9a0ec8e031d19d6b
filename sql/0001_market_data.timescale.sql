-- Applied only where the TimescaleDB extension is available (checked in pg_available_extensions).
CREATE EXTENSION IF NOT EXISTS timescaledb;

SELECT create_hypertable('md_trades', 'ts_event', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('md_quotes', 'ts_event', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('md_book_snapshots', 'ts_event', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('md_book_deltas', 'ts_event', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('md_candles', 'ts_event', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);

ALTER TABLE md_trades SET (timescaledb.compress, timescaledb.compress_segmentby = 'exchange, symbol',
                           timescaledb.compress_orderby = 'ts_event');
SELECT add_compression_policy('md_trades', INTERVAL '7 days', if_not_exists => TRUE);
ALTER TABLE md_book_deltas SET (timescaledb.compress, timescaledb.compress_segmentby = 'exchange, symbol',
                                timescaledb.compress_orderby = 'ts_event');
SELECT add_compression_policy('md_book_deltas', INTERVAL '2 days', if_not_exists => TRUE);
SELECT add_retention_policy('md_book_deltas', INTERVAL '90 days', if_not_exists => TRUE);
SELECT add_retention_policy('md_quotes', INTERVAL '90 days', if_not_exists => TRUE);

-- 1-minute bars from trades, maintained by TimescaleDB.
CREATE MATERIALIZED VIEW IF NOT EXISTS md_trade_bars_1m
WITH (timescaledb.continuous) AS
SELECT exchange, symbol,
       time_bucket(INTERVAL '1 minute', ts_event) AS bucket,
       first(price, ts_event) AS open,
       max(price) AS high,
       min(price) AS low,
       last(price, ts_event) AS close,
       sum(amount) AS volume,
       count(*) AS trade_count
FROM md_trades
GROUP BY exchange, symbol, bucket
WITH NO DATA;
SELECT add_continuous_aggregate_policy('md_trade_bars_1m',
    start_offset => INTERVAL '3 hours', end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute', if_not_exists => TRUE);
