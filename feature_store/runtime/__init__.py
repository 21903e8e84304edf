"""Code that runs in AWS (the Glue job ingestion): standard library and boto3 only."""
