"""The feature group's schema and names, derived from the model-build contract (no second list).

The record is the contract's input row (``INPUT_COLUMNS``: every feature in ``FEATURES``, then
``target``) plus the two fields Feature Store needs:

* ``record_id`` (String), the record identifier: the ETL job sets it to
  :func:`ingest.content_record_id` of the row's values (SHA-256 of the canonical feature and
  target values), so re-ingesting the same row overwrites the same record instead of adding a
  duplicate. A request to the endpoint refers to a record by this id (README "Feature Store").
* ``event_time`` (String, ISO-8601 UTC ``YYYY-MM-DDTHH:MM:SSZ``): when the ETL run ingested it.

Plain data and string building only: no CDK, no boto3.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.naming import Naming
from pipelines.model_build import contract

RECORD_ID = "record_id"
EVENT_TIME = "event_time"
#: Feature Store's feature types (FeatureDefinition.FeatureType).
FRACTIONAL, INTEGRAL, STRING = "Fractional", "Integral", "String"
#: Where the offline store writes, in the stage's curated bucket (its own prefix).
OFFLINE_STORE_PREFIX = "feature-store/"
#: The catalog Athena reads the offline store's Glue table from.
DATA_CATALOG = "AwsDataCatalog"
#: Columns Feature Store adds to every offline-store row (and table).
WRITE_TIME, API_INVOCATION_TIME, IS_DELETED = "write_time", "api_invocation_time", "is_deleted"


def feature_definitions() -> tuple[tuple[str, str], ...]:
    """(FeatureName, FeatureType) of every feature of the group, in order."""
    if {RECORD_ID, EVENT_TIME} & set(contract.INPUT_COLUMNS):
        raise ValueError(f"{RECORD_ID}/{EVENT_TIME} clash with a contract column")
    return (
        (RECORD_ID, STRING),
        (EVENT_TIME, STRING),
        *((name, FRACTIONAL) for name in contract.FEATURES),
        (contract.TARGET_COLUMN, INTEGRAL),
    )


def feature_group_name(naming: Naming) -> str:
    """``<prefix>-features`` (FeatureGroupName: at most 64 characters, letters, digits and
    single hyphens)."""
    return naming.resource("features", 64)


def offline_table_name(naming: Naming) -> str:
    """The Glue table Feature Store creates for the offline store (in the lake's database)."""
    return naming.glue("features")


def _quote(identifier: str) -> str:
    if '"' in identifier or not identifier:
        raise ValueError(f"not a usable SQL identifier: {identifier!r}")
    return f'"{identifier}"'


def training_query(database: str, table: str) -> str:
    """The Athena query of the training set over the offline store's Glue table.

    Latest record per ``record_id`` by event time (ties: the later API call, then the later
    write), and only when that latest record is not a deletion: the ``is_deleted`` filter comes
    AFTER the ranking, so an id whose last record is a delete marker is left out instead of
    falling back to its previous version. Selects exactly the contract's ``INPUT_COLUMNS``, in
    order (what Preprocess checks).
    """
    columns = ", ".join(_quote(name) for name in contract.INPUT_COLUMNS)
    return (
        f"SELECT {columns} FROM ("
        f"SELECT *, row_number() OVER (PARTITION BY {_quote(RECORD_ID)} ORDER BY "
        f"from_iso8601_timestamp({_quote(EVENT_TIME)}) DESC, {_quote(API_INVOCATION_TIME)} DESC, "
        f"{_quote(WRITE_TIME)} DESC) AS dedup_rank "
        f"FROM {_quote(database)}.{_quote(table)}"
        f") WHERE dedup_rank = 1 AND NOT {_quote(IS_DELETED)}"
    )


@dataclass(frozen=True)
class OfflineStoreSource:
    """What the model-build pipeline needs to read its data from the offline store."""

    database: str
    table: str
    workgroup: str

    @property
    def query(self) -> str:
        return training_query(self.database, self.table)
