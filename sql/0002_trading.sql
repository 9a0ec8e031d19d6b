-- Tables the later stages fill: features, signals, risk decisions, orders and their events,
-- fills, equity. Written now so the schema is whole; the stages that fill them arrive later.

CREATE TABLE IF NOT EXISTS features (
    exchange        text        NOT NULL,
    symbol          text        NOT NULL,
    timeframe       text        NOT NULL,
    schema_version  integer     NOT NULL,
    ts_event        timestamptz NOT NULL,   -- bar close time the features describe
    ts_computed     timestamptz NOT NULL,
    "values"        jsonb       NOT NULL,
    PRIMARY KEY (exchange, symbol, timeframe, schema_version, ts_event)
);

CREATE TABLE IF NOT EXISTS signals (
    strategy        text        NOT NULL,
    account         text        NOT NULL,
    exchange        text        NOT NULL,
    symbol          text        NOT NULL,
    side            text        NOT NULL CHECK (side IN ('buy', 'sell')),
    strength        double precision NOT NULL,
    confidence      double precision NOT NULL,
    model_version   text,
    reasons         jsonb       NOT NULL DEFAULT '[]',
    ts_event        timestamptz NOT NULL,
    PRIMARY KEY (strategy, exchange, symbol, ts_event)
);

CREATE TABLE IF NOT EXISTS risk_decisions (
    decision_id     text        NOT NULL,
    account         text        NOT NULL,
    client_order_id text,
    kind            text        NOT NULL,   -- approved | denied | state_changed | kill_switch
    trading_state   text        NOT NULL,
    reasons         jsonb       NOT NULL DEFAULT '[]',
    detail          jsonb       NOT NULL DEFAULT '{}',
    ts_event        timestamptz NOT NULL,
    PRIMARY KEY (decision_id, ts_event)
);

CREATE TABLE IF NOT EXISTS orders (
    client_order_id text        PRIMARY KEY,
    account         text        NOT NULL,
    strategy        text        NOT NULL,
    exchange        text        NOT NULL,
    symbol          text        NOT NULL,
    side            text        NOT NULL CHECK (side IN ('buy', 'sell')),
    order_type      text        NOT NULL,
    amount          numeric     NOT NULL CHECK (amount > 0),
    limit_price     numeric,
    status          text        NOT NULL,
    venue_order_id  text,
    ts_created      timestamptz NOT NULL,
    ts_updated      timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS order_events (
    client_order_id text        NOT NULL REFERENCES orders (client_order_id),
    seq             integer     NOT NULL,
    event           text        NOT NULL,
    status_before   text        NOT NULL,
    status_after    text        NOT NULL,
    detail          jsonb       NOT NULL DEFAULT '{}',
    ts_event        timestamptz NOT NULL,
    PRIMARY KEY (client_order_id, seq)
);

CREATE TABLE IF NOT EXISTS fills (
    exchange        text        NOT NULL,
    fill_id         text        NOT NULL,
    client_order_id text        NOT NULL,
    account         text        NOT NULL,
    symbol          text        NOT NULL,
    side            text        NOT NULL CHECK (side IN ('buy', 'sell')),
    price           numeric     NOT NULL CHECK (price > 0),
    amount          numeric     NOT NULL CHECK (amount > 0),
    fee             numeric     NOT NULL DEFAULT 0,
    fee_currency    text,
    liquidity       text        CHECK (liquidity IN ('maker', 'taker')),
    ts_event        timestamptz NOT NULL,
    PRIMARY KEY (exchange, fill_id, ts_event)
);

CREATE TABLE IF NOT EXISTS equity (
    account         text        NOT NULL,
    ts_event        timestamptz NOT NULL,
    equity          numeric     NOT NULL,
    cash            numeric     NOT NULL,
    gross_exposure  numeric     NOT NULL,
    net_exposure    numeric     NOT NULL,
    realized_pnl    numeric     NOT NULL,
    unrealized_pnl  numeric     NOT NULL,
    peak_equity     numeric     NOT NULL,
    drawdown        numeric     NOT NULL,
    PRIMARY KEY (account, ts_event)
);
