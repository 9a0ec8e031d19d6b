-- Strategy pause and resume (issue 11) travel on the same command path as the kill switch and the
-- breaker reset, so their audit rows go to operator_commands too: the new kinds, and the strategy
-- they name (NULL for account-wide commands, required for the strategy ones).
ALTER TABLE operator_commands ADD COLUMN IF NOT EXISTS strategy text;
ALTER TABLE operator_commands DROP CONSTRAINT IF EXISTS operator_commands_kind_check;
ALTER TABLE operator_commands ADD CONSTRAINT operator_commands_kind_check
    CHECK (kind IN ('kill_switch', 'reset_breaker', 'pause_strategy', 'resume_strategy'));
ALTER TABLE operator_commands ADD CONSTRAINT operator_commands_strategy_check
    CHECK ((kind IN ('pause_strategy', 'resume_strategy')) = (strategy IS NOT NULL AND length(trim(strategy)) > 0));
