-- Market data as it arrived: trades, quotes, order book snapshots and deltas, candles.
-- Natural keys make re-ingestion idempotent (the sink inserts with ON CONFLICT DO NOTHING).
-- Each key includes ts_event because a TimescaleDB hypertable requires its time column in every
-- unique index; a trade id carries exactly one ts_event, so the key is still one row per trade.

CREATE TABLE IF NOT EXISTS md_trades (
    exchange    text        NOT NULL,
    symbol      text        NOT NULL,
    trade_id    text        NOT NULL,
    price       numeric     NOT NULL CHECK (price > 0),
    amount      numeric     NOT NULL CHECK (amount > 0),
    side        text        CHECK (side IN ('buy', 'sell')),
    ts_event    timestamptz NOT NULL,
    ts_recv     timestamptz NOT NULL,
    -- Key order (instrument, time, id) serves time-range reads per instrument too, so no second
    -- index has to be maintained on the hottest table.
    PRIMARY KEY (exchange, symbol, ts_event, trade_id)
);

CREATE TABLE IF NOT EXISTS md_quotes (
    exchange    text        NOT NULL,
    symbol      text        NOT NULL,
    sequence    bigint,
    bid_price   numeric     NOT NULL,
    bid_amount  numeric     NOT NULL,
    ask_price   numeric     NOT NULL,
    ask_amount  numeric     NOT NULL,
    ts_event    timestamptz NOT NULL,
    ts_recv     timestamptz NOT NULL,
    -- bookTicker updates without an exchange time share ts_event = receive time; the sequence
    -- (or -1 when the venue gives none) keeps them apart.
    sequence_key bigint GENERATED ALWAYS AS (coalesce(sequence, -1)) STORED,
    PRIMARY KEY (exchange, symbol, ts_event, sequence_key)
);

CREATE TABLE IF NOT EXISTS md_book_snapshots (
    exchange    text        NOT NULL,
    symbol      text        NOT NULL,
    sequence    bigint,
    bids        jsonb       NOT NULL,
    asks        jsonb       NOT NULL,
    ts_event    timestamptz NOT NULL,
    ts_recv     timestamptz NOT NULL,
    sequence_key bigint GENERATED ALWAYS AS (coalesce(sequence, -1)) STORED,
    PRIMARY KEY (exchange, symbol, ts_event, sequence_key)
);

CREATE TABLE IF NOT EXISTS md_book_deltas (
    exchange       text        NOT NULL,
    symbol         text        NOT NULL,
    first_sequence bigint,
    sequence       bigint,
    bids           jsonb       NOT NULL,
    asks           jsonb       NOT NULL,
    ts_event       timestamptz NOT NULL,
    ts_recv        timestamptz NOT NULL,
    sequence_key   bigint GENERATED ALWAYS AS (coalesce(sequence, -1)) STORED,
    PRIMARY KEY (exchange, symbol, ts_event, sequence_key)
);

CREATE TABLE IF NOT EXISTS md_candles (
    exchange    text        NOT NULL,
    symbol      text        NOT NULL,
    timeframe   text        NOT NULL,
    open        numeric     NOT NULL,
    high        numeric     NOT NULL,
    low         numeric     NOT NULL,
    close       numeric     NOT NULL,
    volume      numeric     NOT NULL CHECK (volume >= 0),
    closed      boolean     NOT NULL DEFAULT true,
    ts_event    timestamptz NOT NULL,   -- the candle's open time
    ts_recv     timestamptz NOT NULL,
    PRIMARY KEY (exchange, symbol, timeframe, ts_event),
    CHECK (high >= greatest(open, close) AND low <= least(open, close))
);

-- Records that failed a contract or did not decode, with the reason and the original bytes.
CREATE TABLE IF NOT EXISTS dead_letters (
    id          bigserial   PRIMARY KEY,
    stage       text        NOT NULL,
    reason      text        NOT NULL,
    detail      text        NOT NULL,
    source_topic text,
    source_partition integer,
    source_offset bigint,
    msg_key     bytea,
    original    bytea       NOT NULL,
    ts_recv     timestamptz NOT NULL,
    UNIQUE (source_topic, source_partition, source_offset, stage)
);
