"""Data quality: cheap per-event contracts applied in the flows, and (later) Great Expectations suites."""
