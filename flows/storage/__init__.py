"""PostgreSQL / TimescaleDB storage: forward-only migrations and idempotent batched sinks."""
