-- Feature vectors, one row per instrument, timeframe, schema version and bar end: the history
-- the features flow writes (COPY, idempotent on the natural key) and the PostgreSQL offline store
-- of Feast reads. One column per feature of features/schema.py, in its order and with its type
-- (tests/unit/flows/test_feature_rows_migration.py keeps them equal). A NULL is a feature that
-- was not available for that bar (warm-up, empty bar, book awaiting resync).

CREATE TABLE IF NOT EXISTS feature_rows (
    symbol                text        NOT NULL,   -- exchange:SYMBOL, the Feast entity
    timeframe             text        NOT NULL,
    schema_version        integer     NOT NULL,
    event_timestamp       timestamptz NOT NULL,   -- bar end: the first moment every value is known
    bar_start             timestamptz NOT NULL,
    bar_open              double precision,
    bar_high              double precision,
    bar_low               double precision,
    bar_close             double precision,
    bar_volume            double precision,
    bar_vwap              double precision,
    bar_trade_count       bigint,
    bar_buy_volume        double precision,
    bar_sell_volume       double precision,
    bar_empty             boolean,
    return_1              double precision,
    log_return_1          double precision,
    sma_20                double precision,
    ema_20                double precision,
    rsi_14                double precision,
    macd_12_26            double precision,
    macd_signal_9         double precision,
    macd_hist             double precision,
    bb_upper_20_2         double precision,
    bb_middle_20          double precision,
    bb_lower_20_2         double precision,
    atr_14                double precision,
    vwap_20               double precision,
    stoch_k_14_3          double precision,
    stoch_d_3             double precision,
    obv                   double precision,
    realized_vol_20       double precision,
    zscore_20             double precision,
    flow_buy_volume_60s   double precision,
    flow_sell_volume_60s  double precision,
    flow_imbalance_60s    double precision,
    flow_intensity_60s    double precision,
    book_mid              double precision,
    book_spread           double precision,
    book_spread_bps       double precision,
    book_microprice       double precision,
    book_imbalance_5      double precision,
    book_depth_bid_10bps  double precision,
    book_depth_ask_10bps  double precision,
    PRIMARY KEY (symbol, timeframe, schema_version, event_timestamp)
);

-- Point-in-time joins read one symbol's rows by time.
CREATE INDEX IF NOT EXISTS feature_rows_symbol_time ON feature_rows (symbol, event_timestamp);
