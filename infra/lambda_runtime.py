"""The Python runtime of every Lambda function the project deploys: one place to move them all."""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_

LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
