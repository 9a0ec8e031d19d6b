-- One row per `bot4 validate` run: what was validated, the outcome and the full JSON summary.
-- The embedded SQLite store gets the same table (text for jsonb and timestamptz), created by
-- quality.validate on first use, because it has no migration runner.

CREATE TABLE IF NOT EXISTS quality_runs (
    run_id          text        PRIMARY KEY,
    backend         text        NOT NULL CHECK (backend IN ('postgresql', 'sqlite')),
    target          text        NOT NULL,   -- the database URL, password hidden
    tables          jsonb       NOT NULL,   -- table names validated, in order
    symbol          text,                   -- the --symbol filter (NULL: every instrument)
    range_start     timestamptz,
    range_end       timestamptz,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    success         boolean     NOT NULL,
    batches         integer     NOT NULL CHECK (batches >= 0),
    rows_validated  bigint      NOT NULL CHECK (rows_validated >= 0),
    failed_checks   integer     NOT NULL CHECK (failed_checks >= 0),
    report_path     text,
    summary         jsonb       NOT NULL
);

CREATE INDEX IF NOT EXISTS quality_runs_started_at ON quality_runs (started_at);
