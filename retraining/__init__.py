"""Alarms -> retraining: drift, 5xx and latency alarms and a schedule start the model-build
pipeline through a debounced Step Functions workflow (``infrastructure.Retraining``)."""
