"""Data drift of an endpoint's captured requests against the training baseline.

Modules (each usable on its own; only ``core`` imports Evidently, and lazily):

* ``capture``: select SageMaker data-capture files of a time window (hour-partitioned key layout,
  in S3 or in a local copy) and parse their request payloads into feature rows.
* ``core``: per-feature drift with Evidently's ``DataDriftPreset`` (its default stat tests), the
  share of drifted features, the dataset-drift flag, and the JSON + HTML reports.
* ``baseline``: the model package an endpoint serves, and its reference sample's S3 URI.
* ``metrics``: CloudWatch metric datums from a report, and their publication in batches.
* ``job``: the drift job's entry point (``python -m monitoring.drift.job``): local files in,
  reports and metric datums out; no network access needed.
* ``local_run``: ``make drift-local``: the job on the two shipped batches.
* ``batches``: regenerates the shipped batches under ``data/`` (deterministic).
"""
