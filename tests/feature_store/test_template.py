"""The Feature Store option on: ONE dev stage built once for the module (the shipped config does
not enable it), its stateful and model-build templates asserted on, nag and cfn-lint at zero."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from feature_store import schema
from feature_store.infrastructure import ETL_ARGUMENT
from pipelines.model_build import contract
from tests.botocore_shapes import validate, validate_shape
from tests.conftest import no_network, resources_of_type

ACCOUNT, REGION = "111111111111", "us-east-1"
FEATURE_GROUP = "mlops-dev-features"
TABLE = "mlops_dev_features"
DATABASE = "mlops_dev_lake"
WORKGROUP = "mlops-dev-analytics"


@pytest.fixture(scope="module")
def built(
    cdk_context: dict[str, Any],
    definition_cache_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    import aws_cdk as cdk

    from infra.compliance import findings
    from infra.config import load_config
    from infra.stages import stage_class
    from pipelines.model_build.definition_cache import CONTEXT_KEY

    mlops = copy.deepcopy(cdk_context["mlops"])
    mlops["environments"]["dev"]["feature_store"] = {
        "enabled": True,
        "online": True,
        "training_data": "offline_store",
    }
    (dev,) = [s for s in load_config(mlops).stages_for_branch("main") if s.env_name == "dev"]
    flags = {k: v for k, v in cdk_context.items() if k.startswith("@aws-cdk")}
    app = cdk.App(
        context={**flags, CONTEXT_KEY: str(definition_cache_dir)},
        outdir=str(tmp_path_factory.mktemp("feature-store.out")),
        stack_traces=False,
    )
    with no_network() as attempts:
        stage = stage_class(dev)(app, config=dev)
        found = findings(stage)
        assembly = stage.synth()
    assert attempts == []
    stacks = {
        stack.node.id: assembly.get_stack_artifact(stack.artifact_id)
        for stack in (stage.stateful, stage.model_build, stage.deployment)
    }
    return {
        "findings": [str(f) for f in found],
        "templates": {name: artifact.template for name, artifact in stacks.items()},
        "paths": [
            Path(assembly.directory) / stacks[name].template_file
            for name in ("Stateful", "ModelBuild")  # the deployment stack changes in 2 places
        ],
        "stage": stage,
    }


def _stateful(built: dict[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = built["templates"]["Stateful"]
    return template


def _feature_group(built: dict[str, Any]) -> dict[str, Any]:
    (group,) = resources_of_type(_stateful(built), "AWS::SageMaker::FeatureGroup").values()
    props: dict[str, Any] = group["Properties"]
    return props


def _logical_id(built: dict[str, Any], prefix: str, type_: str) -> str:
    (found,) = [k for k in resources_of_type(_stateful(built), type_) if k.startswith(prefix)]
    return found


def _statements(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    roles = [k for k in resources_of_type(template, "AWS::IAM::Role") if k.startswith(role_prefix)]
    (role,) = roles
    return [
        statement
        for policy in resources_of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


# ---- schema, encryption, catalog ------------------------------------------------------------


def test_the_feature_group_schema_is_the_contracts_feature_list(built: dict[str, Any]) -> None:
    props = _feature_group(built)
    definitions = [(d["FeatureName"], d["FeatureType"]) for d in props["FeatureDefinitions"]]
    assert definitions == [
        ("record_id", "String"),
        ("event_time", "String"),
        *((name, "Fractional") for name in contract.FEATURES),
        (contract.TARGET_COLUMN, "Integral"),
    ]
    assert props["RecordIdentifierFeatureName"] == "record_id"
    assert props["EventTimeFeatureName"] == "event_time"
    assert props["FeatureGroupName"] == FEATURE_GROUP
    (group,) = resources_of_type(_stateful(built), "AWS::SageMaker::FeatureGroup").values()
    database_id = _logical_id(built, "DataLakeDatabase", "AWS::Glue::Database")
    policy_id = _logical_id(built, "FeatureStoreOfflineStoreRoleDefaultPolicy", "AWS::IAM::Policy")
    # Created after the Glue database (its table goes there) and the role's policy.
    assert {database_id, policy_id} <= set(group["DependsOn"])


def test_offline_and_online_stores_use_the_stage_key_and_the_lake(built: dict[str, Any]) -> None:
    props = _feature_group(built)
    key_id = _logical_id(built, "DataLakeKey", "AWS::KMS::Key")
    curated_id = _logical_id(built, "DataLakeCuratedBucket", "AWS::S3::Bucket")
    key_arn = {"Fn::GetAtt": [key_id, "Arn"]}
    offline = props["OfflineStoreConfig"]
    assert offline["S3StorageConfig"] == {
        "KmsKeyId": key_arn,
        "S3Uri": {"Fn::Join": ["", ["s3://", {"Ref": curated_id}, "/feature-store"]]},
    }
    assert offline["DataCatalogConfig"] == {
        "Catalog": "AwsDataCatalog",
        "Database": DATABASE,
        "TableName": TABLE,
    }
    assert offline["DisableGlueTableCreation"] is False  # Feature Store creates the table
    assert props["OnlineStoreConfig"] == {
        "EnableOnlineStore": True,
        "SecurityConfig": {"KmsKeyId": key_arn},
        "StorageType": "Standard",
    }
    # No key of its own: the lake key serves both stores ($1/month per key, branch budgets).
    keys = resources_of_type(_stateful(built), "AWS::KMS::Key")
    assert not [k for k in keys if "FeatureStore" in k]


def test_create_feature_group_request_matches_botocore(built: dict[str, Any]) -> None:
    """The properties as the CreateFeatureGroup request CloudFormation makes of them, tokens
    replaced by values of their real form."""
    props = copy.deepcopy(_feature_group(built))
    props["RoleArn"] = f"arn:aws:iam::{ACCOUNT}:role/offline-store-role"
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    props["OfflineStoreConfig"]["S3StorageConfig"]["KmsKeyId"] = key
    props["OfflineStoreConfig"]["S3StorageConfig"]["S3Uri"] = "s3://curated-bucket/feature-store"
    props["OnlineStoreConfig"]["SecurityConfig"]["KmsKeyId"] = key
    props.pop("Tags", None)
    assert validate("sagemaker", "CreateFeatureGroup", props) == []


# ---- least privilege -------------------------------------------------------------------------


def test_offline_store_role_writes_only_its_prefix_and_table(built: dict[str, Any]) -> None:
    template = _stateful(built)
    (role_id,) = [
        k
        for k in resources_of_type(template, "AWS::IAM::Role")
        if k.startswith("FeatureStoreOfflineStoreRole")
    ]
    role = template["Resources"][role_id]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    statements = _statements(template, "FeatureStoreOfflineStoreRole")
    curated_id = _logical_id(built, "DataLakeCuratedBucket", "AWS::S3::Bucket")
    prefix_arn = {"Fn::Join": ["", [{"Fn::GetAtt": [curated_id, "Arn"]}, "/feature-store/*"]]}
    by_action = {action: s for s in statements for action in _actions(s)}
    assert by_action["s3:PutObject"]["Resource"] == prefix_arn
    assert by_action["s3:PutObjectAcl"]["Resource"] == prefix_arn
    assert by_action["s3:GetBucketAcl"]["Resource"] == {"Fn::GetAtt": [curated_id, "Arn"]}
    glue = by_action["glue:CreateTable"]["Resource"]
    assert glue[2] == f"arn:aws:glue:{REGION}:{ACCOUNT}:table/{DATABASE}/{TABLE}"  # no wildcard
    assert not [a for a in by_action if a.startswith(("s3:GetObject", "s3:List", "s3:Delete"))]
    key_arn = {"Fn::GetAtt": [_logical_id(built, "DataLakeKey", "AWS::KMS::Key"), "Arn"]}
    kms = {a: s["Resource"] for a, s in by_action.items() if a.startswith("kms:")}
    assert "kms:GenerateDataKey*" in kms  # (kms:Decrypt too: S3 multipart uploads need it)
    assert all(resource == key_arn for resource in kms.values())


def test_the_etl_job_ingests_into_this_group_only(built: dict[str, Any]) -> None:
    template = _stateful(built)
    (job,) = resources_of_type(template, "AWS::Glue::Job").values()
    arguments = job["Properties"]["DefaultArguments"]
    assert arguments[ETL_ARGUMENT] == FEATURE_GROUP
    extra = json.dumps(arguments["--extra-py-files"])
    assert ".zip" in extra and "cdk-hnb659fds-assets" in extra
    statements = _statements(template, "DataLakeEtlJobRole")
    (ingest,) = [s for s in statements if "sagemaker:PutRecord" in _actions(s)]
    assert sorted(_actions(ingest)) == ["sagemaker:DescribeFeatureGroup", "sagemaker:PutRecord"]
    assert ingest["Resource"] == (
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:feature-group/{FEATURE_GROUP}"
    )
    # The ingestion module: this one object of the assets bucket.
    (module,) = [s for s in statements if ".zip" in json.dumps(s.get("Resource"))]
    assert _actions(module) == ["s3:GetObject"]


def test_the_pipeline_role_may_query_the_offline_store(built: dict[str, Any]) -> None:
    template = built["templates"]["ModelBuild"]
    statements = _statements(template, "ModelBuildExecutionRole")
    (athena,) = [s for s in statements if "athena:StartQueryExecution" in _actions(s)]
    assert athena["Resource"] == f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/{WORKGROUP}"
    (glue,) = [s for s in statements if "glue:GetTable" in _actions(s)]
    assert "glue:CreateTable" not in _actions(glue)
    assert glue["Resource"][2] == f"arn:aws:glue:{REGION}:{ACCOUNT}:table/{DATABASE}/{TABLE}"
    reads = json.dumps([s["Resource"] for s in statements if "s3:GetObject*" in _actions(s)])
    assert "/feature-store/*" in reads and "/athena-results/*" in reads


def test_no_nag_finding_and_cfn_lint_clean(built: dict[str, Any]) -> None:
    import cfnlint.api

    assert built["findings"] == []
    for path in built["paths"]:
        assert [str(m) for m in cfnlint.api.lint_file(path)] == [], path.name


# ---- the pipeline variant --------------------------------------------------------------------


def _preprocess_inputs(built: dict[str, Any]) -> list[dict[str, Any]]:
    """Preprocess's inputs in the stage's definition (its CDK tokens made plain text)."""
    (pipeline,) = resources_of_type(
        built["templates"]["ModelBuild"], "AWS::SageMaker::Pipeline"
    ).values()
    body = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    definition = json.loads("".join(p if isinstance(p, str) else "token" for p in parts))
    (step,) = [s for s in definition["Steps"] if s["Name"] == contract.PREPROCESS_STEP]
    inputs: list[dict[str, Any]] = step["Arguments"]["ProcessingInputs"]
    return inputs


def test_preprocess_reads_the_offline_store_query(built: dict[str, Any]) -> None:
    raw, *others = _preprocess_inputs(built)
    athena = raw["DatasetDefinition"]["AthenaDatasetDefinition"]
    assert athena["QueryString"] == schema.training_query(DATABASE, TABLE)
    assert (athena["Database"], athena["WorkGroup"]) == (DATABASE, WORKGROUP)
    assert [i["InputName"] for i in others] == ["model_code", "code"]
    assert all("S3Input" in i for i in others)


def test_the_dataset_definition_input_matches_botocore() -> None:
    """The rendered variant (same builder as the stage's), its Preprocess raw input validated as
    a ProcessingInput of botocore's SageMaker model."""
    from pipelines.model_build.definition import PipelineInputs, build_definition

    inputs = PipelineInputs(
        pipeline_name="mlops-dev-model-build",
        region=REGION,
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/pipeline",
        artifacts_bucket="artifacts-bucket",
        code_uri="s3://artifacts-bucket/code/model-build/abc",
        input_data_uri="s3://raw-bucket/datasets/",
        kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        model_package_group_name="mlops-dev-models",
        processing_instance_type="ml.m5.large",
        processing_instance_count=1,
        training_instance_type="ml.m5.large",
        training_instance_count=1,
        spot_training=False,
        hyperparameter_tuning=False,
        approval_threshold=0.9,
        offline_store_query=schema.training_query(DATABASE, TABLE),
        offline_store_database=DATABASE,
        athena_workgroup=WORKGROUP,
    )
    definition = json.loads(build_definition(inputs))
    (step,) = [s for s in definition["Steps"] if s["Name"] == contract.PREPROCESS_STEP]
    raw = step["Arguments"]["ProcessingInputs"][0]
    athena = raw["DatasetDefinition"]["AthenaDatasetDefinition"]
    assert athena["QueryString"] == schema.training_query(DATABASE, TABLE)
    assert athena["Database"] == DATABASE and athena["WorkGroup"] == WORKGROUP
    assert athena["OutputFormat"] == "PARQUET" and athena["KmsKeyId"] == inputs.kms_key_arn
    assert raw["DatasetDefinition"]["LocalPath"] == contract.PREPROCESS.input("raw").container_path
    assert athena["OutputS3Uri"]["Std:Join"]["Values"][-2:] == ["Preprocess", "offline_store_query"]
    athena["OutputS3Uri"] = "s3://artifacts-bucket/pipelines/x/Preprocess/offline_store_query"
    assert validate_shape("sagemaker", "ProcessingInput", raw) == []
    # The other inputs are untouched S3 inputs (same order as the contract's).
    names = [i["InputName"] for i in step["Arguments"]["ProcessingInputs"]]
    assert names[:2] == [i.name for i in contract.PREPROCESS.inputs]


def test_the_option_adds_no_priced_resource(built: dict[str, Any]) -> None:
    """No unpriced type, no KMS key beyond the stage's own (branch stages have a budget)."""
    from costing.estimate import _price_resources, load_prices

    resources = [r for t in built["templates"].values() for r in t["Resources"].values()]
    _, zero, unpriced = _price_resources(resources, load_prices(REGION), owns_account=True)
    assert unpriced == {}
    assert zero["AWS::SageMaker::FeatureGroup"] == 1
    keys = [
        logical_id
        for template in built["templates"].values()
        for logical_id in resources_of_type(template, "AWS::KMS::Key")
    ]
    assert "DataLakeKey" in " ".join(keys) and not [k for k in keys if "FeatureStore" in k]


def test_the_deployed_model_reads_the_online_store(built: dict[str, Any]) -> None:
    """CreateModel gives the model the group's name and region (online_features.py reads
    them); its execution role may GetRecord on this group and decrypt with the stage key."""
    from pipelines.model_build.model_code import online_features

    template = built["templates"]["Deployment"]
    (machine,) = resources_of_type(template, "AWS::StepFunctions::StateMachine").values()
    definition = machine["Properties"]["DefinitionString"]
    parts = definition["Fn::Join"][1] if isinstance(definition, dict) else [definition]
    asl = json.loads("".join(p if isinstance(p, str) else "token" for p in parts))
    (create_model,) = [
        state
        for state in _states(asl)
        if state.get("Resource", "").endswith("sagemaker:createModel")
    ]
    environment = create_model["Parameters"]["PrimaryContainer"]["Environment"]
    assert environment[online_features.ENV_FEATURE_GROUP] == FEATURE_GROUP
    assert environment[online_features.ENV_REGION] == REGION
    statements = _statements(template, "ModelDeploymentModelExecutionRole")
    (get_record,) = [s for s in statements if "sagemaker:GetRecord" in _actions(s)]
    assert _actions(get_record) == ["sagemaker:GetRecord"]
    assert get_record["Resource"] == (
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:feature-group/{FEATURE_GROUP}"
    )


def _states(value: Any) -> list[dict[str, Any]]:
    """Every object of a state machine definition that has a ``Resource`` (its task states,
    wherever they are nested)."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        if isinstance(value.get("Resource"), str):
            found.append(value)
        for item in value.values():
            found += _states(item)
    elif isinstance(value, list):
        for item in value:
            found += _states(item)
    return found
