"""The ingestion workflow EXECUTED in moto's Step Functions (see ingestion_moto): one upload,
a burst and a duplicate, a Glue failure."""

from __future__ import annotations

import re

import boto3

from tests.ingestion.ingestion_moto import (
    CURATED_BUCKET,
    RAW_BUCKET,
    REGION,
    IngestionHarness,
)
from tests.ingestion.ingestion_moto import s3_object_created as uploaded

KEY = "datasets/breast_cancer/2026-11-30.csv"
GLUE_RUN = re.compile(r"jr_[0-9a-f]{64}")


def test_one_upload_starts_exactly_one_pipeline_execution(harness: IngestionHarness) -> None:
    harness.start(uploaded(KEY))
    executions = harness.wait_all()
    assert [e["status"] for e in executions.values()] == ["SUCCEEDED"]
    (run,) = harness.job_runs()
    assert run["JobRunState"] == "SUCCEEDED"
    (pipeline,) = harness.pipeline_executions()
    params = pipeline["Parameters"]
    assert params["InputDataUrl"] == f"s3://{CURATED_BUCKET}/datasets/breast_cancer/"
    assert params["InputDataVersion"] == f"glue:{run['Id']}"
    assert GLUE_RUN.fullmatch(run["Id"])
    assert params["TriggerReason"] == f"ingestion:{run['Id']}"
    assert re.fullmatch(r"ingestion-[0-9a-f-]{36}", pipeline["PipelineExecutionDisplayName"])
    description = pipeline["PipelineExecutionDescription"]
    assert f"s3://{RAW_BUCKET}/{KEY}" in description
    assert run["Id"] in description
    assert harness.notices() == []


def test_a_burst_and_a_duplicate_start_one_run(harness: IngestionHarness) -> None:
    event = uploaded(KEY)
    harness.start(event)
    harness.start(event)  # EventBridge delivers at least once: the same event again
    harness.start(uploaded("datasets/breast_cancer/part-2.csv", etag="0" * 32))
    executions = harness.wait_all()
    assert len(executions) == 3
    assert all(e["status"] == "SUCCEEDED" for e in executions.values())
    assert len(harness.job_runs()) == 1
    (pipeline,) = harness.pipeline_executions()
    # The newest upload's execution ran: its object is the one named.
    assert "part-2.csv" in pipeline["PipelineExecutionDescription"]


def test_a_glue_failure_notifies_and_starts_no_pipeline(harness: IngestionHarness) -> None:
    harness.glue_outcome[0] = "FAILED"
    harness.start(uploaded(KEY))
    executions = harness.wait_all()
    (execution,) = executions.values()
    assert execution["status"] == "FAILED"
    assert execution["error"] == "IngestionFailed"
    assert harness.pipeline_executions() == []
    (notice,) = harness.notices()
    assert notice["workflow"] == "ingestion"
    assert notice["stage"] == "mlops-dev"
    assert notice["error"] == "States.TaskFailed"
    assert notice["object"]["key"] == KEY
    assert notice["execution"] == execution["executionArn"]


def test_a_crawl_already_running_is_waited_for(harness: IngestionHarness) -> None:
    """The data lake's conditional trigger may start the crawler after the ETL run: the
    workflow's own StartCrawler then fails with CrawlerRunningException and joins the wait."""
    glue = boto3.client("glue", region_name=REGION)
    glue.start_crawler(Name=harness.crawler_name)
    harness.start(uploaded(KEY))
    executions = harness.wait_all()
    (execution,) = executions.values()
    assert execution["status"] == "SUCCEEDED"
    assert len(harness.pipeline_executions()) == 1
    sfn = boto3.client("stepfunctions", region_name=REGION)
    history = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    failed = [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]
    assert failed == ["Glue.CrawlerRunningException"]
