"""The operator console: an HTTP API (``bot4 serve``) over PostgreSQL, the report folders and the
live Kafka topics, the commands of the operator command path, and the web UI built from
``console/`` that it serves. See docs/console.md."""
