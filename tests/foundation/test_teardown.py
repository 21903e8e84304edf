"""Branch teardown removes run-time resources of that branch's stage only (moto, no AWS; the
monitoring schedules moto lacks in-process: tests/sweeper/monitoring_fake.py)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.config import load_config
from sweeper.teardown import teardown
from tests.sweeper.monitoring_fake import MonitoringSchedules


@pytest.fixture
def stages(mlops_config: dict[str, Any]) -> dict[str, Any]:
    config = load_config(mlops_config)
    return {s.stage_id: s for s in config.stages_for_branch("feat/drift")}


def _model(client: Any, name: str) -> None:
    client.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::111111111111:role/x",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"},
    )


@mock_aws
def test_teardown_deletes_only_the_branch_stage_resources(stages: dict[str, Any]) -> None:
    client = boto3.client("sagemaker", region_name="us-east-1")
    MonitoringSchedules(client.meta.events)
    branch = stages["mlops-br-feat-drift"]
    for name in ("mlops-br-feat-drift-model-1", "mlops-dev-model-1"):
        _model(client, name)
    client.create_endpoint_config(
        EndpointConfigName="mlops-br-feat-drift-config-1",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "mlops-br-feat-drift-model-1",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    client.create_endpoint(
        EndpointName=branch.naming.endpoint, EndpointConfigName="mlops-br-feat-drift-config-1"
    )
    client.create_model_package_group(ModelPackageGroupName=branch.naming.model_package_group)
    client.create_model_package(
        ModelPackageGroupName=branch.naming.model_package_group,
        InferenceSpecification={
            "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )
    package_arn = client.list_model_packages(
        ModelPackageGroupName=branch.naming.model_package_group
    )["ModelPackageSummaryList"][0]["ModelPackageArn"]
    # moto does not implement DeleteModelPackage: record the call instead.
    deleted_packages: list[str] = []
    client.delete_model_package = lambda ModelPackageName: deleted_packages.append(ModelPackageName)
    messages: list[str] = []
    assert teardown(client, branch, messages.append) == 4
    assert deleted_packages == [package_arn]
    assert [m["ModelName"] for m in client.list_models()["Models"]] == ["mlops-dev-model-1"]
    assert client.list_endpoints()["Endpoints"] == []
    assert any("deleted endpoint mlops-br-feat-drift-endpoint" in m for m in messages)


@mock_aws
def test_teardown_refuses_shared_stages(stages: dict[str, Any]) -> None:
    client = boto3.client("sagemaker", region_name="us-east-1")
    MonitoringSchedules(client.meta.events)
    _model(client, "mlops-dev-model-1")
    with pytest.raises(ValueError, match="shared stage"):
        teardown(client, stages["mlops-dev"])
    assert len(client.list_models()["Models"]) == 1
