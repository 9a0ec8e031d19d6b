-- Online models (issue 4): prequential scores and drift events, written by flows.models.
-- A score row is one model on one instrument as of one label's arrival; cumulative columns cover
-- every label since the model started on the instrument (drift resets included), rolling_* the
-- last window_size labels. NULL = undefined (no label yet, or ROC AUC with one class only).
-- Rows are keyed naturally, so a replayed flow (at-least-once output) adds nothing.
CREATE TABLE IF NOT EXISTS model_scores (
    model             text             NOT NULL,
    model_version     text             NOT NULL,   -- catalog identity, e.g. logreg:v1
    symbol            text             NOT NULL,   -- instrument key exchange:SYMBOL
    ts_event          timestamptz      NOT NULL,   -- bar end at which the label arrived
    n_labels          bigint           NOT NULL CHECK (n_labels >= 0),
    window_size       integer          NOT NULL CHECK (window_size > 0),
    log_loss          double precision CHECK (log_loss >= 0),
    roc_auc           double precision CHECK (roc_auc BETWEEN 0 AND 1),
    accuracy          double precision CHECK (accuracy BETWEEN 0 AND 1),
    brier             double precision CHECK (brier BETWEEN 0 AND 1),
    rolling_log_loss  double precision CHECK (rolling_log_loss >= 0),
    rolling_roc_auc   double precision CHECK (rolling_roc_auc BETWEEN 0 AND 1),
    rolling_accuracy  double precision CHECK (rolling_accuracy BETWEEN 0 AND 1),
    rolling_brier     double precision CHECK (rolling_brier BETWEEN 0 AND 1),
    recorded_at       timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (model_version, symbol, ts_event, n_labels)
);
CREATE INDEX IF NOT EXISTS model_scores_symbol_ts ON model_scores (symbol, ts_event);

-- Drift detector firings on a model's error stream and what the models stage did (reset, switch
-- to the fallback model, restore the primary, or nothing).
CREATE TABLE IF NOT EXISTS model_drift_events (
    model          text        NOT NULL,
    model_version  text        NOT NULL,
    symbol         text        NOT NULL,
    ts_event       timestamptz NOT NULL,
    detector       text        NOT NULL,
    n_labels       bigint      NOT NULL CHECK (n_labels >= 0),
    action         text        NOT NULL CHECK (action IN ('none', 'reset', 'fallback', 'restored')),
    detail         text        NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_version, symbol, ts_event, action)
);
