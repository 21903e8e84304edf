"""Ingestion: new raw data -> Glue ETL -> crawler -> model build (see infrastructure.py)."""
