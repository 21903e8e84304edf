"""Runtime code that watches deployed models (drift detection); no CDK code lives here."""
