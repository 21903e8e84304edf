"""``mlops status``: what a stage runs now, read from SageMaker (no CloudFormation, no cdk.out).

* the model-build pipeline's last executions: status, start, duration (running: so far), why
  each started (its ``TriggerReason`` parameter and display name: ``ingestion-<uuid>``, the
  retraining gate's name, or a console/SDK start; in JSON also the execution's description,
  where ingestion names the raw object and the Glue run);
* the model versions of the stage's model package group: approval status and comment, the data
  version and trigger recorded by the pipeline (``CustomerMetadataProperties``), and the
  evaluation metrics the version's ``ModelMetrics.ModelQuality`` report holds (read from S3);
* the stage's endpoints: status and what the deployment workflow tagged on them (the model
  version served, since when).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from cli.output import duration, print_table
from infra.config import StageConfig
from lambdas.deploy_plan.handler import DEPLOYED_AT_TAG, PACKAGE_TAG, VERSION_TAG
from pipelines.model_build.definition import PARAM_INPUT_DATA_VERSION, PARAM_TRIGGER_REASON

#: Terminal pipeline execution statuses: a finished execution's duration is fixed.
FINISHED = frozenset({"Succeeded", "Failed", "Stopped"})
#: The metrics shown from the evaluation report (SageMaker's binary-classification format).
METRICS = ("auc", "accuracy", "precision", "recall", "f1")


def paged(call: Callable[..., dict[str, Any]], key: str, **kwargs: Any) -> Iterator[Any]:
    token: str | None = None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


def not_found(error: ClientError) -> bool:
    """The resource does not exist (not deployed yet); any other refusal is an error."""
    info = error.response.get("Error", {})
    code, message = str(info.get("Code", "")), str(info.get("Message", "")).lower()
    missing = "not exist" in message or "could not find" in message or "not found" in message
    return "NotFound" in code or (code == "ValidationException" and missing)


def pipeline_executions(sagemaker: Any, pipeline: str, limit: int, now: datetime) -> dict[str, Any]:
    try:
        summaries = sagemaker.list_pipeline_executions(
            PipelineName=pipeline,
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=limit,
        )["PipelineExecutionSummaries"]
    except ClientError as error:
        if not_found(error):
            return {"pipeline": pipeline, "found": False, "executions": []}
        raise
    executions = []
    for summary in summaries:
        arn = summary["PipelineExecutionArn"]
        described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
        parameters = {
            p["Name"]: p["Value"]
            for p in paged(
                sagemaker.list_pipeline_parameters_for_execution,
                "PipelineParameters",
                PipelineExecutionArn=arn,
            )
        }
        status = described.get("PipelineExecutionStatus", summary.get("PipelineExecutionStatus"))
        started = described.get("CreationTime") or summary.get("StartTime")
        ended = described.get("LastModifiedTime") if status in FINISHED else now
        executions.append(
            {
                "arn": arn,
                "display_name": summary.get("PipelineExecutionDisplayName"),
                "description": summary.get("PipelineExecutionDescription"),
                "status": status,
                "started": started,
                "duration_seconds": (
                    round((ended - started).total_seconds()) if started and ended else None
                ),
                "running": status not in FINISHED,
                "trigger_reason": parameters.get(PARAM_TRIGGER_REASON),
                "input_data_version": parameters.get(PARAM_INPUT_DATA_VERSION),
                "failure_reason": described.get("FailureReason"),
            }
        )
    return {"pipeline": pipeline, "found": True, "executions": executions}


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an S3 object URI: {uri}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def read_metrics(s3: Any, uri: str) -> tuple[dict[str, float], str | None]:
    """The report's ``binary_classification_metrics`` values; or why they could not be read."""
    try:
        bucket, key = split_s3_uri(uri)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        report = json.loads(body)["binary_classification_metrics"]
        return {
            name: float(report[name]["value"])
            for name in METRICS
            if isinstance(report.get(name), dict) and "value" in report[name]
        }, None
    except ClientError as error:
        return {}, f"cannot read {uri}: {error.response.get('Error', {}).get('Code', error)}"
    except (ValueError, KeyError, TypeError) as error:
        return {}, f"not an evaluation report: {uri}: {error}"


def model_versions(sagemaker: Any, s3: Any | None, group: str, limit: int) -> dict[str, Any]:
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
    except ClientError as error:
        if not_found(error):
            return {"group": group, "found": False, "versions": []}
        raise
    summaries = sagemaker.list_model_packages(
        ModelPackageGroupName=group,
        ModelPackageType="Versioned",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=limit,
    )["ModelPackageSummaryList"]
    versions = []
    for summary in summaries:
        package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        metadata = package.get("CustomerMetadataProperties") or {}
        statistics = (
            (package.get("ModelMetrics") or {}).get("ModelQuality", {}).get("Statistics", {})
        )
        uri = statistics.get("S3Uri")
        metrics, problem = read_metrics(s3, uri) if uri and s3 is not None else ({}, None)
        versions.append(
            {
                "arn": package["ModelPackageArn"],
                "version": package.get("ModelPackageVersion"),
                "approval_status": package.get("ModelApprovalStatus"),
                "approval_description": package.get("ApprovalDescription"),
                "created": package.get("CreationTime"),
                "input_data_version": metadata.get(PARAM_INPUT_DATA_VERSION),
                "trigger_reason": metadata.get(PARAM_TRIGGER_REASON),
                "metadata": metadata,
                "metrics_source": uri,
                "metrics": metrics,
                "metrics_error": problem,
            }
        )
    return {"group": group, "found": True, "versions": versions}


def endpoints(sagemaker: Any, prefix: str) -> list[dict[str, Any]]:
    """The stage's endpoints (names ``<prefix>-...``) and what the deployment workflow tagged."""
    found = []
    for summary in paged(sagemaker.list_endpoints, "Endpoints", NameContains=f"{prefix}-"):
        if not summary["EndpointName"].startswith(f"{prefix}-"):
            continue
        tags = {
            t["Key"]: t["Value"]
            for t in paged(sagemaker.list_tags, "Tags", ResourceArn=summary["EndpointArn"])
        }
        found.append(
            {
                "name": summary["EndpointName"],
                "status": summary.get("EndpointStatus"),
                "model_package_arn": tags.get(PACKAGE_TAG),
                "model_package_version": tags.get(VERSION_TAG),
                "serving_since": tags.get(DEPLOYED_AT_TAG),
                "last_modified": summary.get("LastModifiedTime"),
            }
        )
    return sorted(found, key=lambda e: str(e["name"]))


def stage_status(
    sagemaker: Any,
    s3: Any | None,
    stage: StageConfig,
    limit: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    naming = stage.naming
    return {
        "stage": stage.stage_id,
        "environment": stage.env_name,
        "branch": stage.branch,
        "account": stage.environment.account,
        "region": stage.environment.region,
        "pipelines": [
            pipeline_executions(sagemaker, naming.pipeline, limit, now or datetime.now(UTC))
        ],
        "model_versions": model_versions(sagemaker, s3, naming.model_package_group, limit),
        "endpoints": endpoints(sagemaker, naming.prefix),
    }


def print_status(report: dict[str, Any]) -> None:
    print(
        f"stage {report['stage']} ({report['environment']}, branch {report['branch']}) "
        f"account {report['account']} region {report['region']}"
    )
    for pipeline in report["pipelines"]:
        title = f"pipeline {pipeline['pipeline']}"
        rows = [
            (
                e["status"],
                e["started"],
                (duration_text(e["duration_seconds"]) + (" (running)" if e["running"] else ""))
                if e["duration_seconds"] is not None
                else None,
                e["trigger_reason"],
                e["display_name"],
            )
            for e in pipeline["executions"]
        ]
        print_table(
            title,
            ("status", "started", "duration", "trigger reason", "display name"),
            rows,
            "no executions" if pipeline["found"] else "not deployed",
        )
    group = report["model_versions"]
    print_table(
        f"model versions in {group['group']}",
        ("version", "approval", "created", "data version", "trigger", *METRICS, "comment"),
        (
            (
                v["version"],
                v["approval_status"],
                v["created"],
                v["input_data_version"],
                v["trigger_reason"],
                *(v["metrics"].get(m) for m in METRICS),
                v["approval_description"] or v["metrics_error"],
            )
            for v in group["versions"]
        ),
        "no versions" if group["found"] else "not deployed",
    )
    print_table(
        "endpoints",
        ("endpoint", "status", "serves version", "since", "model package"),
        (
            (
                e["name"],
                e["status"],
                e["model_package_version"],
                e["serving_since"],
                e["model_package_arn"],
            )
            for e in report["endpoints"]
        ),
        "none deployed",
    )


def duration_text(seconds: int) -> str:
    return duration(timedelta(seconds=seconds))
