"""``mlops lineage <model version ARN>``: what produced a model version, from the registry and
the pipeline APIs.

* the version (``DescribeModelPackage``): group, approval, artifact and image, its recorded
  metadata (``CustomerMetadataProperties``: ``InputDataVersion``, ``TriggerReason``,
  ``CodeBundleHash``, ``PipelineExecutionArn``), its evaluation report (``ModelMetrics``) and the
  baseline it carries (``DriftCheckBaselines`` / ``ModelMetrics.ModelDataQuality``);
* the pipeline execution that registered it: the ``PipelineExecutionArn`` the pipeline records on
  the version; for a version registered before that was recorded, the execution whose
  ``RegisterModel`` step registered this ARN (``ListPipelineExecutionSteps`` metadata), searched
  among the group's pipeline's newest executions (``--pipeline``, ``--search``);
* the execution's input data: its ``InputDataUrl`` and ``InputDataVersion`` parameters
  (``ListPipelineParametersForExecution``), and its status, start and end;
* the code bundle: the ``code`` input of the execution's Preprocess job
  (``DescribeProcessingJob``), ``s3://<artifacts>/code/model-build/<content hash>``.

SageMaker's lineage graph (``QueryLineage``) holds the same associations as entity ARNs (artifacts,
contexts, actions) that each need a further Describe call; the registry and pipeline APIs above
name each item directly, so the command does not query it.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from cli.errors import CliError
from cli.output import print_table
from cli.status import paged
from pipelines.model_build import contract
from pipelines.model_build.definition import (
    METADATA_CODE_BUNDLE_HASH,
    METADATA_PIPELINE_EXECUTION_ARN,
    PARAM_INPUT_DATA,
    PARAM_INPUT_DATA_VERSION,
    PARAM_TRIGGER_REASON,
)

#: ProcessingInput name the SDK gives a processing job's script (``code=``).
CODE_INPUT = "code"
DEFAULT_SEARCH = 50


def _uri(section: dict[str, Any] | None, *path: str) -> str | None:
    value: Any = section or {}
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None


def _is_execution_arn(value: str | None) -> bool:
    return bool(value) and ":pipeline/" in str(value) and "/execution/" in str(value)


def find_execution(sagemaker: Any, package_arn: str, pipeline: str, search: int) -> str | None:
    """The execution of ``pipeline`` whose RegisterModel step registered ``package_arn``."""
    summaries = sagemaker.list_pipeline_executions(
        PipelineName=pipeline, SortBy="CreationTime", SortOrder="Descending", MaxResults=search
    )["PipelineExecutionSummaries"]
    for summary in summaries:
        arn = summary["PipelineExecutionArn"]
        for step in execution_steps(sagemaker, arn):
            if _uri(step.get("Metadata"), "RegisterModel", "Arn") == package_arn:
                return str(arn)
    return None


def execution_steps(sagemaker: Any, execution_arn: str) -> list[dict[str, Any]]:
    return list(
        paged(
            sagemaker.list_pipeline_execution_steps,
            "PipelineExecutionSteps",
            PipelineExecutionArn=execution_arn,
        )
    )


def code_bundle(sagemaker: Any, steps: list[dict[str, Any]]) -> str | None:
    """``<code_uri>`` from the Preprocess job's script input (``<code_uri>/scripts/<file>``)."""
    for step in steps:
        job_arn = _uri(step.get("Metadata"), "ProcessingJob", "Arn")
        if step.get("StepName") != contract.PREPROCESS.name or not job_arn:
            continue
        job = sagemaker.describe_processing_job(ProcessingJobName=job_arn.rsplit("/", 1)[-1])
        for job_input in job.get("ProcessingInputs", []):
            uri = _uri(job_input, "S3Input", "S3Uri")
            if job_input.get("InputName") == CODE_INPUT and uri:
                marker = f"/{contract.CODE_BUNDLE_SCRIPTS}/"
                return uri.rsplit(marker, 1)[0] if marker in uri else uri
    return None


def lineage(
    sagemaker: Any, package_arn: str, pipeline: str | None, search: int = DEFAULT_SEARCH
) -> dict[str, Any]:
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    metadata = dict(package.get("CustomerMetadataProperties") or {})
    metrics, baselines = package.get("ModelMetrics") or {}, package.get("DriftCheckBaselines")
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    generated_by = _uri(package.get("MetadataProperties"), "GeneratedBy")

    execution_arn = metadata.get(METADATA_PIPELINE_EXECUTION_ARN)
    source = "model version metadata"
    if not _is_execution_arn(execution_arn) and _is_execution_arn(generated_by):
        execution_arn, source = generated_by, "MetadataProperties.GeneratedBy"
    if not _is_execution_arn(execution_arn):
        if pipeline is None:
            raise CliError(
                f"{package_arn} records no pipeline execution",
                "pass --pipeline <name> to search that pipeline's executions",
            )
        execution_arn = find_execution(sagemaker, package_arn, pipeline, search)
        source = f"RegisterModel step of {pipeline}"
    execution: dict[str, Any] | None = None
    if execution_arn:
        try:
            described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        except ClientError as error:
            raise CliError(
                f"{package_arn} names execution {execution_arn}, which cannot be read: "
                f"{error.response.get('Error', {}).get('Code', error)}",
                "executions are kept for a limited time; the version's metadata remains",
            ) from error
        parameters = {
            p["Name"]: p["Value"]
            for p in paged(
                sagemaker.list_pipeline_parameters_for_execution,
                "PipelineParameters",
                PipelineExecutionArn=execution_arn,
            )
        }
        steps = execution_steps(sagemaker, execution_arn)
        execution = {
            "arn": execution_arn,
            "found_by": source,
            "pipeline_arn": described.get("PipelineArn"),
            "display_name": described.get("PipelineExecutionDisplayName"),
            "status": described.get("PipelineExecutionStatus"),
            "started": described.get("CreationTime"),
            "last_modified": described.get("LastModifiedTime"),
            "parameters": parameters,
            "code_bundle": code_bundle(sagemaker, steps),
        }
    params = (execution or {}).get("parameters", {})
    return {
        "model_version": {
            "arn": package_arn,
            "group": package.get("ModelPackageGroupName"),
            "version": package.get("ModelPackageVersion"),
            "approval_status": package.get("ModelApprovalStatus"),
            "created": package.get("CreationTime"),
            "model_data_url": containers[0].get("ModelDataUrl"),
            "image": containers[0].get("Image"),
            "metadata": metadata,
        },
        "pipeline_execution": execution,
        "input_data": {
            "url": params.get(PARAM_INPUT_DATA),
            "version": params.get(PARAM_INPUT_DATA_VERSION)
            or metadata.get(PARAM_INPUT_DATA_VERSION),
            "trigger_reason": params.get(PARAM_TRIGGER_REASON)
            or metadata.get(PARAM_TRIGGER_REASON),
        },
        "code_bundle": {
            "uri": (execution or {}).get("code_bundle"),
            "hash": metadata.get(METADATA_CODE_BUNDLE_HASH),
        },
        "baseline": {
            "statistics": _uri(baselines, "ModelDataQuality", "Statistics", "S3Uri")
            or _uri(metrics, "ModelDataQuality", "Statistics", "S3Uri"),
            "constraints": _uri(baselines, "ModelDataQuality", "Constraints", "S3Uri")
            or _uri(metrics, "ModelDataQuality", "Constraints", "S3Uri"),
        },
        "evaluation_report": _uri(metrics, "ModelQuality", "Statistics", "S3Uri"),
    }


def print_lineage(report: dict[str, Any]) -> None:
    version, execution = report["model_version"], report["pipeline_execution"] or {}
    rows = [
        (
            "model version",
            f"{version['group']} v{version['version']} ({version['approval_status']})",
        ),
        ("arn", version["arn"]),
        ("artifact", version["model_data_url"]),
        ("image", version["image"]),
        ("pipeline execution", execution.get("arn") or "not found"),
        ("  found by", execution.get("found_by")),
        ("  status", execution.get("status")),
        ("  started", execution.get("started")),
        ("  display name", execution.get("display_name")),
        ("input data", report["input_data"]["url"]),
        ("  version", report["input_data"]["version"]),
        ("  trigger reason", report["input_data"]["trigger_reason"]),
        ("code bundle", report["code_bundle"]["uri"]),
        ("  hash", report["code_bundle"]["hash"]),
        ("baseline statistics", report["baseline"]["statistics"]),
        ("baseline constraints", report["baseline"]["constraints"]),
        ("evaluation report", report["evaluation_report"]),
    ]
    print_table(f"lineage of {version['arn']}", ("", ""), rows)
