"""Model serving: a local server on SageMaker's container contract, plus load testing."""
