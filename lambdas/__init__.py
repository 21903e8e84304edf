"""Lambda function sources: one folder per function, each shipped as its own asset.

Every folder is self-contained (``handler.py`` imports nothing from its siblings): boto3 comes
from the Lambda runtime and aws-lambda-powertools (with pydantic) from the AWS-managed Powertools
layer, so nothing is bundled and no Docker is needed.
"""
