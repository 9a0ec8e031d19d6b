-- Applied only where the TimescaleDB extension is available.
SELECT create_hypertable('features', 'ts_event', chunk_time_interval => INTERVAL '7 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('equity', 'ts_event', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('risk_decisions', 'ts_event', chunk_time_interval => INTERVAL '7 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
