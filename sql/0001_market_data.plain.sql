-- Plain PostgreSQL equivalent of the TimescaleDB continuous aggregate: a view with the same
-- name and columns, computed on read (no compression or retention policies without the extension).
CREATE OR REPLACE VIEW md_trade_bars_1m AS
SELECT exchange, symbol,
       date_trunc('minute', ts_event) AS bucket,
       (array_agg(price ORDER BY ts_event, trade_id))[1] AS open,
       max(price) AS high,
       min(price) AS low,
       (array_agg(price ORDER BY ts_event DESC, trade_id DESC))[1] AS close,
       sum(amount) AS volume,
       count(*) AS trade_count
FROM md_trades
GROUP BY exchange, symbol, date_trunc('minute', ts_event);
