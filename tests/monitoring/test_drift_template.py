"""The monitoring backend on the synthesized templates: every shipped stage runs the drift job
(session synth); ``off`` and ``model_monitor`` build none of it (a test-local operations stack,
built once per module)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.app_builder import load_cdk_json_context
from infra.compliance import findings
from infra.config import CONTEXT_KEY, StageConfig, VpcConfig, load_config
from monitoring.drift.metrics import DEFAULT_NAMESPACE
from monitoring.infrastructure import (
    BASELINE_DIR,
    CAPTURE_DIR,
    IMAGE_CONTEXT_EXCLUDE,
    LAUNCHER_MODULES,
    REPORT_DIR,
)
from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES, dumps, resources_of_type

STAGES = (*SHARED_STAGES, EPHEMERAL_STAGE)


def _configs() -> dict[str, StageConfig]:
    config = load_config(load_cdk_json_context()[CONTEXT_KEY])
    return {s.stage_id: s for s in config.stages_for_branch("feat/Some_Branch")}


def _drift_machine(template: dict[str, Any], prefix: str) -> tuple[str, dict[str, Any]]:
    machines = [
        (lid, r)
        for lid, r in resources_of_type(template, "AWS::StepFunctions::StateMachine").items()
        if r["Properties"]["StateMachineName"] == f"{prefix}-drift"
    ]
    assert len(machines) == 1, [m[0] for m in machines]
    return machines[0]


def _asl(machine: dict[str, Any]) -> dict[str, Any]:
    """The definition with every CloudFormation token replaced by a marker naming it."""
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else _marker(p) for p in parts)
    return dict(json.loads(text))


def _marker(token: dict[str, Any]) -> str:
    return f"<{dumps(token)}>".replace('"', "'")


def _tail(resource: Any) -> str:
    """The literal end of an ARN built with Fn::Join (``.../prefix/*``)."""
    return str(resource["Fn::Join"][1][-1]) if isinstance(resource, dict) else str(resource)


def _statements(template: dict[str, Any], role_logical_id: str) -> list[dict[str, Any]]:
    found = []
    for policy in resources_of_type(template, "AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


@pytest.mark.parametrize("stage", STAGES)
def test_every_shipped_stage_schedules_the_drift_workflow(
    templates: dict[str, dict[str, dict[str, Any]]], stage: str
) -> None:
    config = _configs()[stage]
    settings = config.environment.monitoring
    assert settings.backend == "drift_job"
    template = templates[stage]["Operations"]
    machine_id, _machine = _drift_machine(template, stage)
    schedules = [
        s
        for s in resources_of_type(template, "AWS::Scheduler::Schedule").values()
        if s["Properties"]["Name"] == f"{stage}-drift-schedule"
    ]
    (schedule,) = schedules
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == settings.schedule
    assert props["ScheduleExpressionTimezone"] == "UTC"
    assert props["Target"]["Arn"] == {"Ref": machine_id}
    # The scheduled time (not the start time of a retried execution) ends the window.
    assert json.loads(props["Target"]["Input"]) == {
        "reason": "schedule",
        "scheduledTime": "<aws.scheduler.scheduled-time>",
    }
    # Only this schedule may assume its role (confused deputy).
    role_id = props["Target"]["RoleArn"]["Fn::GetAtt"][0]
    trust = template["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert f"schedule/default/{stage}-drift-schedule" in dumps(statement["Condition"])
    (start,) = _statements(template, role_id)
    assert _actions(start) == ["states:StartExecution"] and start["Resource"] == {"Ref": machine_id}


@pytest.mark.parametrize("stage", ["mlops-dev", "mlops-prod"])
def test_the_job_is_network_isolated_encrypted_and_runs_the_job_entry_point(
    templates: dict[str, dict[str, dict[str, Any]]], stage: str
) -> None:
    config = _configs()[stage]
    template = templates[stage]["Operations"]
    _, machine = _drift_machine(template, stage)
    states = _asl(machine)["States"]
    task = states["RunDriftJob"]
    assert task["Resource"].endswith(":states:::sagemaker:createProcessingJob.sync")
    params = task["Parameters"]
    assert params["NetworkConfig"]["EnableNetworkIsolation"] is True
    cluster = params["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceType"] == config.environment.sizing.processing_instance_type
    assert cluster["InstanceCount"] == 1
    # Volume and output under the stage's data key (the stateful stack's key export).
    assert "DataLakeKey" in cluster["VolumeKmsKeyId"]
    assert params["ProcessingOutputConfig"]["KmsKeyId"] == cluster["VolumeKmsKeyId"]
    assert params["ProcessingJobName.$"] == "$.prepare.jobName"
    inputs = {i["InputName"]: i["S3Input"] for i in params["ProcessingInputs"]}
    assert inputs["baseline"]["LocalPath"] == BASELINE_DIR
    assert inputs["capture"] == {
        "S3Uri.$": "$.prepare.manifestUri",
        "LocalPath": CAPTURE_DIR,
        "S3DataType": "ManifestFile",
        "S3InputMode": "File",
        "S3DataDistributionType": "FullyReplicated",
    }
    (output,) = params["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["LocalPath"] == REPORT_DIR
    assert "container-assets" in params["AppSpecification"]["ImageUri"]
    assert params["AppSpecification"]["ContainerArguments.$"].startswith("States.Array(")
    assert "publish-metrics" not in params["AppSpecification"]["ContainerArguments.$"]
    # Failures of any step reach the operations topic, then the run fails.
    for name in ("Prepare", "RunDriftJob", "Publish"):
        (catch,) = states[name]["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "NotifyFailure"
    assert states["NotifyFailure"]["Next"] == "DriftRunFailed"
    assert states["DriftRunFailed"]["Type"] == "Fail"
    prepare = states["Prepare"]["Parameters"]
    assert prepare["windowHours"] == config.environment.monitoring.window_hours
    assert prepare["capturePrefix"] == "data-capture/"
    assert prepare["endpointName"] == config.naming.endpoint


def test_roles_are_least_privilege(templates: dict[str, dict[str, dict[str, Any]]]) -> None:
    stage = "mlops-staging"
    template = templates[stage]["Operations"]
    _, machine = _drift_machine(template, stage)
    roles = resources_of_type(template, "AWS::IAM::Role")

    def role_id(fragment: str) -> str:
        (found,) = [lid for lid in roles if lid.startswith("DriftMonitoring") and fragment in lid]
        return found

    # The workflow: CreateProcessingJob only isolated, only its own job names, only the key.
    machine_statements = _statements(template, machine["Properties"]["RoleArn"]["Fn::GetAtt"][0])
    (create,) = [s for s in machine_statements if "sagemaker:CreateProcessingJob" in _actions(s)]
    assert _actions(create) == ["sagemaker:CreateProcessingJob"]
    assert create["Condition"]["Bool"] == {
        "sagemaker:NetworkIsolation": "true",
        "sagemaker:InterContainerTrafficEncryption": "true",
    }
    assert set(create["Condition"]["StringEquals"]) == {
        "sagemaker:VolumeKmsKey",
        "sagemaker:OutputKmsKey",
    }
    assert _tail(create["Resource"]).endswith(f":processing-job/{stage}-drift-*")
    for role_statements in (machine_statements, _statements(template, role_id("JobRole"))):
        (grant,) = [s for s in role_statements if "kms:CreateGrant" in _actions(s)]
        assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    (pass_role,) = [s for s in machine_statements if "iam:PassRole" in _actions(s)]
    assert pass_role["Resource"] == {"Fn::GetAtt": [role_id("JobRole"), "Arn"]}
    # The launcher: PutMetricData only in the drift namespace; no wildcard S3 listing.
    launcher = _statements(template, role_id("LauncherServiceRole"))
    (put,) = [s for s in launcher if "cloudwatch:PutMetricData" in _actions(s)]
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": DEFAULT_NAMESPACE}}
    (listing,) = [s for s in launcher if "s3:ListBucket" in _actions(s)]
    assert listing["Condition"] == {
        "StringLike": {"s3:prefix": [f"data-capture/{stage}-endpoint/AllTraffic/*"]}
    }
    # The job: no CloudWatch access in the drift namespace (it is isolated: the Lambda
    # publishes), no S3 delete, reads only its inputs.
    job = _statements(template, role_id("JobRole"))
    for statement in job:
        if "cloudwatch:PutMetricData" in _actions(statement):
            assert statement["Condition"]["StringEquals"]["cloudwatch:namespace"] != (
                DEFAULT_NAMESPACE
            )
        assert not any(a.startswith("s3:Delete") for a in _actions(statement))
    (reads,) = [s for s in job if _actions(s) == ["s3:GetObject"]]
    assert [_tail(r) for r in reads["Resource"]] == [
        f"/data-capture/{stage}-endpoint/AllTraffic/*",
        f"/drift-reports/{stage}-endpoint/*",
        f"/pipelines/{stage}-model-build/*",
    ]


def test_prods_drift_job_reads_the_promoted_baselines_only(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> None:
    """Prod serves only promoted versions: the job reads the baseline copies promotion made
    (``deployment.promote``), not the model artifacts beside them nor any pipeline output."""
    from deployment import promote
    from monitoring.drift import baseline

    assert promote.PROMOTED_PREFIX == baseline.PROMOTED_MODELS_PREFIX
    template = templates["mlops-prod"]["Operations"]
    (role,) = [
        lid
        for lid in resources_of_type(template, "AWS::IAM::Role")
        if lid.startswith("DriftMonitoringJobRole")
    ]
    job = _statements(template, role)
    (reads,) = [s for s in job if _actions(s) == ["s3:GetObject"]]
    assert [_tail(r) for r in reads["Resource"]] == [
        "/data-capture/mlops-prod-endpoint/AllTraffic/*",
        "/drift-reports/mlops-prod-endpoint/*",
        "/promoted-models/*/baselines/*",
    ]
    (listing,) = [s for s in job if _actions(s) == ["s3:ListBucket"]]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["promoted-models/*/baselines/*"]}}


def test_the_image_and_launcher_assets_hold_only_what_they_run(
    synthesized: Any, templates: dict[str, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    out = Path(synthesized.assembly.directory)
    manifests = sorted(out.glob("assembly-mlops-dev/*Operations*.assets.json"))
    (manifest,) = [json.loads(p.read_text()) for p in manifests]
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerFile"] == "monitoring/image/Dockerfile"
    assert image["source"]["platform"] == "linux/amd64"
    context = (out / "assembly-mlops-dev" / image["source"]["directory"]).resolve()
    files = sorted(p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file())
    assert "monitoring/drift/job.py" in files and "monitoring/image/requirements.txt" in files
    assert "pipelines/model_build/model_code/inference.py" in files
    assert all(
        f.startswith(("monitoring/", "pipelines/")) and "__pycache__" not in f for f in files
    ), files
    assert not [f for f in files if f.startswith(("monitoring/drift/data", "tests", ".venv"))]
    assert len(files) < 40, files
    # What the Dockerfile copies into its WORKDIR is enough: the entry point and the job import
    # from those files alone (the image's PYTHONPATH), nothing else of the repository.
    workdir = tmp_path / "opt/drift"
    dockerfile = (context / image["source"]["dockerFile"]).read_text(encoding="utf-8")
    for line in dockerfile.splitlines():
        if not line.startswith("COPY ") or "--from=" in line:
            continue
        *sources, destination = line.split()[1:]
        if destination.startswith("/"):
            continue  # the build stage's requirements file
        for pattern in sources:
            matches = sorted(context.glob(pattern))
            assert matches, f"COPY {pattern}: nothing in the build context"
            for match in matches:
                target = workdir / destination / match.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(match, target)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import monitoring.drift.entrypoint, monitoring.drift.job as j; print(j.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(workdir)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(workdir / "monitoring/drift/job.py")
    # The launcher Lambda's code: exactly its stdlib-only modules.
    template = templates["mlops-dev"]["Operations"]
    (launcher,) = [
        r
        for lid, r in resources_of_type(template, "AWS::Lambda::Function").items()
        if lid.startswith("DriftMonitoringLauncher")
    ]
    assert launcher["Properties"]["Handler"] == "monitoring.drift.launch.handler"
    code_hash = launcher["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    code = (out / "assembly-mlops-dev" / manifest["files"][code_hash]["source"]["path"]).resolve()
    code_files = sorted(p.relative_to(code).as_posix() for p in code.rglob("*") if p.is_file())
    assert code_files == sorted(
        ["monitoring/__init__.py", *(f"monitoring/drift/{m}" for m in LAUNCHER_MODULES)]
    )


def test_the_image_context_excludes_are_gitignore_whitelists() -> None:
    assert IMAGE_CONTEXT_EXCLUDE[0] == "/*"  # everything else at the root is never walked
    dockerfile = Path(__file__).resolve().parents[2] / "monitoring/image/Dockerfile"
    text = dockerfile.read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                allowed = f"!/{source}" in IMAGE_CONTEXT_EXCLUDE or any(
                    f"!/{source}".startswith(p.rstrip("*")) and p.endswith("*.py")
                    for p in IMAGE_CONTEXT_EXCLUDE
                )
                assert allowed, f"{source} is copied but excluded from the build context"


# --- Variants the shipped config does not exercise: one small operations stack per backend.


@pytest.fixture(scope="module")
def variant_templates() -> dict[str, dict[str, Any]]:
    import aws_cdk as cdk
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_s3 as s3
    from aws_cdk.assertions import Template

    from stacks.operations_stack import OperationsStack

    base = _configs()["mlops-staging"]
    app = cdk.App()
    env = cdk.Environment(account="111111111111", region="us-east-1")
    lake = cdk.Stack(app, "Lake", env=env)
    bucket = s3.Bucket.from_bucket_name(lake, "Bucket", "artifacts")
    key = kms.Key.from_key_arn(lake, "Key", "arn:aws:kms:us-east-1:111111111111:key/k")
    built = {}
    vpc = VpcConfig(
        "vpc-0123456789abcdef0", ("subnet-0123456789abcdef0",), ("sg-0123456789abcdef0",)
    )
    for backend, schedule, window in (
        ("off", "cron(0 2 ? * * *)", 24),
        ("model_monitor", "cron(0 * ? * * *)", 1),
        ("drift_job", "rate(6 hours)", 6),
    ):
        environment = dataclasses.replace(
            base.environment,
            vpc=vpc if backend == "drift_job" else None,
            ingestion=dataclasses.replace(base.environment.ingestion, enabled=False),
            retraining=dataclasses.replace(base.environment.retraining, enabled=False),
            monitoring=dataclasses.replace(
                base.environment.monitoring,
                backend=backend,
                schedule=schedule,
                window_hours=window,
            ),
        )
        config = dataclasses.replace(base, environment=environment)
        stack = OperationsStack(
            app,
            f"Ops-{backend.replace('_', '-')}",
            env=env,
            config=config,
            key=key,
            raw_bucket=bucket,
            curated_bucket=bucket,
            artifacts_bucket=bucket,
            etl_job_name="job",
            crawler_name="crawler",
            database_name="db",
            pipeline_name=config.naming.pipeline,
        )
        built[backend] = {"stack": stack}
    for entry in built.values():  # one synth, after every stack is built
        entry["template"] = Template.from_stack(entry["stack"]).to_json()
    return built


@pytest.mark.parametrize("backend", ["off", "model_monitor"])
def test_other_backends_build_no_drift_job(
    variant_templates: dict[str, dict[str, Any]], backend: str
) -> None:
    built = variant_templates[backend]
    assert built["stack"].drift_monitoring is None
    text = dumps(built["template"])
    assert "createProcessingJob" not in text
    assert "drift-schedule" not in text and "drift-launcher" not in text
    assert not [lid for lid in built["template"]["Resources"] if lid.startswith("DriftMonitoring")]
    assert "DriftStateMachineArn" not in built["template"].get("Outputs", {})


def test_the_drift_job_takes_the_configured_schedule_window_and_vpc(
    variant_templates: dict[str, dict[str, Any]],
) -> None:
    built = variant_templates["drift_job"]
    template = built["template"]
    (schedule,) = resources_of_type(template, "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["ScheduleExpression"] == "rate(6 hours)"
    _, machine = _drift_machine(template, "mlops-staging")
    states = _asl(machine)["States"]
    assert states["Prepare"]["Parameters"]["windowHours"] == 6
    # In the configured VPC: SageMaker moves inputs/outputs through it; still isolated.
    assert states["RunDriftJob"]["Parameters"]["NetworkConfig"] == {
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
        "VpcConfig": {
            "Subnets": ["subnet-0123456789abcdef0"],
            "SecurityGroupIds": ["sg-0123456789abcdef0"],
        },
    }
    job_role = next(
        lid for lid in template["Resources"] if lid.startswith("DriftMonitoringJobRole")
    )
    assert any("ec2:CreateNetworkInterface" in _actions(s) for s in _statements(template, job_role))
    assert "DriftStateMachineArn" in template["Outputs"]
    # The gate: no unacknowledged finding in the drift construct (the session synth gates the
    # shipped configs; this one adds the VPC statements).
    drift = [f for f in findings(built["stack"]) if "/DriftMonitoring/" in f.resource]
    assert drift == []
