-- Audit of every operator command (kill switch, breaker reset): who, when, why, and by which
-- path (cli, file, api). The commands themselves travel on control.commands.v1.
CREATE TABLE IF NOT EXISTS operator_commands (
    id            bigserial   PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('kill_switch', 'reset_breaker')),
    account       text        NOT NULL,
    breaker       text,
    requested_by  text        NOT NULL,
    reason        text        NOT NULL CHECK (length(trim(reason)) > 0),
    via           text        NOT NULL,
    ts            timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS operator_commands_account_ts ON operator_commands (account, ts DESC);
