-- What the console's reads need once the tables are large (benchmarks/bench_console.py, 100k
-- orders): the orders list is the newest first (optionally per account) with each order's filled
-- amount summed from its fills, and positions read the fills stored after the last ones applied.
CREATE INDEX IF NOT EXISTS orders_ts_created ON orders (ts_created DESC, client_order_id);
CREATE INDEX IF NOT EXISTS orders_account_ts_created ON orders (account, ts_created DESC);
CREATE INDEX IF NOT EXISTS fills_client_order_id ON fills (client_order_id);
CREATE INDEX IF NOT EXISTS fills_ts_event ON fills (ts_event, exchange, fill_id);
