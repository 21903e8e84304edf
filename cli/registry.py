"""``mlops approve`` / ``mlops reject``: a model version's approval status, with a comment.

The version is an ARN or ``<group>/<version>`` (looked up in that group). Approving in a stage's
group starts its deployment workflow (EventBridge on the status change). Prod's group is the
exception: prod deploys only versions promoted from staging (``mlops promote``), and its
deployment plan refuses any other; so approving a prod version that carries no promotion
metadata is refused here, before anything changes.
"""

from __future__ import annotations

import re
from typing import Any

from cli.aws import parse_package_arn
from cli.errors import EXIT_USAGE, CliError
from deployment.promote import PROMOTED_KEY

APPROVED, REJECTED = "Approved", "Rejected"
#: UpdateModelPackage's ApprovalDescription: at most 1024 characters (botocore's model).
MAX_COMMENT = 1024
_GROUP_VERSION = re.compile(r"^(?P<group>[A-Za-z0-9-]{1,63})/(?P<version>[0-9]+)$")


def resolve_version(sagemaker: Any, reference: str) -> str:
    """The model package ARN of ``reference`` (an ARN, or ``<group>/<version>``)."""
    if reference.startswith("arn:"):
        parse_package_arn(reference)
        return reference
    match = _GROUP_VERSION.match(reference)
    if not match:
        raise CliError(
            f"not a model version: {reference!r}",
            "give its ARN or <model package group>/<version>",
            EXIT_USAGE,
        )
    wanted = int(match["version"])
    paginator = sagemaker.get_paginator("list_model_packages")
    for page in paginator.paginate(ModelPackageGroupName=match["group"]):
        for summary in page.get("ModelPackageSummaryList", []):
            if summary.get("ModelPackageVersion") == wanted:
                return str(summary["ModelPackageArn"])
    raise CliError(
        f"no version {wanted} in model package group {match['group']}",
        "mlops status lists the versions",
    )


def set_approval(
    sagemaker: Any, arn: str, status: str, comment: str, prod_group: str
) -> dict[str, Any]:
    """Update the version's approval status and ApprovalDescription; what changed."""
    if not comment.strip():
        raise CliError("--comment is empty", "say why the version is approved or rejected", 2)
    if len(comment) > MAX_COMMENT:
        raise CliError(
            f"--comment has {len(comment)} characters", f"at most {MAX_COMMENT}", EXIT_USAGE
        )
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    metadata = package.get("CustomerMetadataProperties") or {}
    if (
        status == APPROVED
        and package.get("ModelPackageGroupName") == prod_group
        and metadata.get(PROMOTED_KEY) != "true"
    ):
        raise CliError(
            f"{arn} was not promoted from staging: prod's deployment would refuse it",
            "approve the version in staging, then mlops promote",
        )
    previous = package.get("ModelApprovalStatus")
    sagemaker.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus=status,
        ApprovalDescription=comment,
        # Repeated as they are (as deployment.promote does): what the pipeline recorded stays.
        **({"CustomerMetadataProperties": metadata} if metadata else {}),
    )
    return {
        "arn": arn,
        "group": package.get("ModelPackageGroupName"),
        "version": package.get("ModelPackageVersion"),
        "previous_status": previous,
        "status": status,
        "comment": comment,
    }
