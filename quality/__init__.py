"""Data quality: cheap per-event contracts applied in the flows (``contracts``), and Great
Expectations suites per stored table with the ``bot4 validate`` runner and its offline report
(``suites``, ``validate``, ``report``)."""
