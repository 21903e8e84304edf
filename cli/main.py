"""``mlops``: the operator CLI (README "Operating: the mlops CLI").

Read commands print tables, or JSON with ``--output json``. Errors are one line on stderr,
``mlops: <what> (<hint>)``, with the exit codes of :mod:`cli.errors`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from cli.errors import (
    EXIT_CODES_HELP,
    EXIT_CREDENTIALS,
    EXIT_FAILURE,
    EXIT_USAGE,
    CliError,
    translate,
)
from cli.output import Output, print_json, print_table

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="mlops",
    help="Operate the SageMaker MLOps stages: status, approvals, promotion, lineage, cost, "
    "teardown.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Env(StrEnum):
    dev = "dev"
    staging = "staging"
    prod = "prod"


EnvOption = Annotated[Env, typer.Option("--env", help="the shared stage: dev, staging or prod")]
BranchOption = Annotated[
    str | None,
    typer.Option("--branch", help="a feature branch: its stage (the default branch: --env's)"),
]
ProfileOption = Annotated[
    str | None, typer.Option("--profile", help="AWS profile (default: the credential chain)")
]
RegionOption = Annotated[
    str | None, typer.Option("--region", help="AWS region (default: the stage's or the ARN's)")
]
OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="table for people, json for scripts")
]
CdkOutArgument = Annotated[
    Path, typer.Argument(help="the cloud assembly make synth writes", show_default=True)
]


def guarded(command: F) -> F:
    """One line and an exit code instead of a traceback for every error an operator can fix."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:
            cli_error = translate(error)
            if cli_error is None:
                raise
            typer.echo(cli_error.line(), err=True)
            raise typer.Exit(cli_error.code) from None

    return wrapper  # type: ignore[return-value]


def _emit(output: Output, data: Any, table: Callable[[], None]) -> None:
    if output is Output.json:
        print_json(data)
    else:
        table()


@app.command()
@guarded
def status(
    env: EnvOption = Env.dev,
    branch: BranchOption = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="executions and versions shown")] = 5,
    metrics: Annotated[
        bool, typer.Option(help="read each version's evaluation report from S3")
    ] = True,
    profile: ProfileOption = None,
    region: RegionOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Pipelines and their last executions, model versions, what each endpoint serves."""
    from cli.aws import check_account, client, session
    from cli.stages import load_app_config, select_stage
    from cli.status import print_status, stage_status

    stage = select_stage(load_app_config(), env.value, branch)
    sess = session(profile, region or stage.environment.region)
    check_account(sess, stage)
    report = stage_status(
        client(sess, "sagemaker"), client(sess, "s3") if metrics else None, stage, limit
    )
    _emit(output, report, lambda: print_status(report))


def _approval(
    approve: bool,
    model_version: str,
    comment: str,
    profile: str | None,
    region: str | None,
    output: Output,
) -> None:
    from cli.aws import client, parse_package_arn, session
    from cli.registry import APPROVED, REJECTED, resolve_version, set_approval
    from cli.stages import load_app_config
    from infra.naming import Naming

    status_value = APPROVED if approve else REJECTED
    config = load_app_config()
    if model_version.startswith("arn:"):
        region = region or parse_package_arn(model_version)["region"]
    sagemaker = client(session(profile, region), "sagemaker")
    arn = resolve_version(sagemaker, model_version)
    prod_group = Naming(config.project, "prod").model_package_group
    result = set_approval(sagemaker, arn, status_value, comment, prod_group)
    _emit(
        output,
        result,
        lambda: print(
            f"{result['group']} v{result['version']}: {result['previous_status']} -> "
            f"{result['status']} ({result['comment']})"
        ),
    )


ModelVersionArgument = Annotated[
    str, typer.Argument(help="model version ARN, or <model package group>/<version>")
]
CommentOption = Annotated[
    str, typer.Option("--comment", "-m", help="why (the version's ApprovalDescription)")
]


def _approval_command(name: str, *, approve: bool, summary: str) -> None:
    """Register ``mlops <name>``: approve (or reject) a model version with a comment."""

    def command(
        model_version: ModelVersionArgument,
        comment: CommentOption,
        profile: ProfileOption = None,
        region: RegionOption = None,
        output: OutputOption = Output.table,
    ) -> None:
        _approval(approve, model_version, comment, profile, region, output)

    command.__doc__ = summary
    app.command(name)(guarded(command))


_approval_command(
    "approve",
    approve=True,
    summary="Approve a model version (starts the stage's deployment) with a comment.",
)
_approval_command("reject", approve=False, summary="Reject a model version with a comment.")


@app.command()
@guarded
def promote(
    package_arn: Annotated[
        str, typer.Option("--package-arn", help="the approved staging model version")
    ],
    source_profile: Annotated[
        str | None, typer.Option(help="AWS profile for the staging account")
    ] = None,
    target_profile: Annotated[
        str | None, typer.Option(help="AWS profile for the prod account")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="region of both stages (default: the profiles')")
    ] = None,
    project: Annotated[str | None, typer.Option(help="project name (default: cdk.json)")] = None,
    target_bucket: Annotated[
        str | None,
        typer.Option(help="prod artifacts bucket (default: prod stateful stack output)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check only, change nothing")] = False,
    without_baselines: Annotated[
        bool,
        typer.Option(
            "--without-baselines",
            help="promote a version that has no drift-check baseline (prod's drift "
            "monitoring cannot run on it)",
        ),
    ] = False,
    output: OutputOption = Output.json,
) -> None:
    """Promote an approved staging version to prod: copy the model and its drift baselines,
    register, approve (the second approval prod requires; the promotion pipeline's
    PromoteModel step runs this)."""
    from cli.promote import run_promote

    if project is None:
        from cli.stages import load_app_config

        project = load_app_config().project
    result = run_promote(
        package_arn,
        project=project,
        source_profile=source_profile,
        target_profile=target_profile,
        region=region,
        target_bucket=target_bucket,
        dry_run=dry_run,
        allow_missing_baselines=without_baselines,
    )
    _emit(
        output,
        result,
        lambda: print_table(
            f"promotion of {package_arn}", ("", ""), [(k, v) for k, v in result.items()]
        ),
    )


@app.command()
@guarded
def lineage(
    model_version: Annotated[str, typer.Argument(help="model version ARN")],
    pipeline: Annotated[
        str | None,
        typer.Option(
            help="pipeline to search when the version records no execution "
            "(default: the model-build pipeline of the stage owning the group)"
        ),
    ] = None,
    search: Annotated[int, typer.Option(min=1, max=100, help="newest executions searched")] = 50,
    profile: ProfileOption = None,
    region: RegionOption = None,
    output: OutputOption = Output.table,
) -> None:
    """The pipeline execution, input data (URI, version), code bundle and baseline of a
    model version."""
    from cli.aws import client, parse_package_arn, session
    from cli.lineage import lineage as build_lineage
    from cli.lineage import print_lineage
    from cli.stages import load_app_config

    parts = parse_package_arn(model_version)
    if pipeline is None:
        config = load_app_config()
        owners = [
            s.naming.pipeline
            for s in config.stages_for_branch(config.default_branch)
            if s.naming.model_package_group == parts["group"]
        ]
        pipeline = owners[0] if owners else None
    sagemaker = client(session(profile, region or parts["region"]), "sagemaker")
    report = build_lineage(sagemaker, model_version, pipeline, search)
    _emit(output, report, lambda: print_lineage(report))


@app.command()
@guarded
def teardown(
    env: EnvOption = Env.dev,
    branch: BranchOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
) -> None:
    """Delete a branch stage's Model Monitor schedules and job definitions, endpoint, endpoint
    configs, models and model versions (make destroy runs it before cdk destroy; shared stages
    are refused, exit 2)."""
    from cli.aws import check_account, client, session
    from cli.stages import load_app_config, select_stage
    from cli.teardown import confirm_prompt, shared_stage_refusal
    from infra.config import StageKind
    from sweeper.teardown import TeardownError
    from sweeper.teardown import teardown as delete_branch_resources

    stage = select_stage(load_app_config(), env.value, branch, follow_git=True)
    if stage.kind is not StageKind.EPHEMERAL:
        raise CliError(shared_stage_refusal(stage), code=EXIT_USAGE)
    if not yes and not _confirmed(confirm_prompt(stage)):
        print("teardown: nothing deleted")
        raise typer.Exit(EXIT_FAILURE)
    sess = session(profile, region or stage.environment.region)
    check_account(sess, stage)
    try:
        count = delete_branch_resources(client(sess, "sagemaker"), stage)
    except TeardownError as error:
        raise CliError(f"teardown incomplete: {error}") from error
    print(f"teardown: {count} resource(s) deleted from {stage.stage_id}")


def _confirmed(prompt: str) -> bool:
    """y/yes at the prompt; no terminal to answer (end of input) is a no."""
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except EOFError:
        print()
        return False


@app.command("stage-name")
@guarded
def stage_name(env: EnvOption = Env.dev, branch: BranchOption = None) -> None:
    """Print the stage id make deploy/diff/destroy target (the checked-out feature branch's
    stage, else --env's)."""
    from cli.stages import load_app_config, select_stage

    print(select_stage(load_app_config(), env.value, branch, follow_git=True).stage_id)


@app.command("synth-summary")
@guarded
def synth_summary(
    cdk_out: CdkOutArgument = Path("cdk.out"), output: OutputOption = Output.table
) -> None:
    """Stages, stacks, resource counts and the security-gate result of the last synth."""
    from cli.summary import load_report, render

    report = load_report(cdk_out)
    _emit(output, report, lambda: print(render(cdk_out, report)))


@app.command()
@guarded
def preflight(
    cdk_out: Annotated[
        Path, typer.Option(help="the cloud assembly make synth writes (its bootstrap version)")
    ] = Path("cdk.out"),
) -> None:
    """Check what a first deploy needs in every stage account (bootstrap, trust, service-linked
    roles, connection), with the default credential chain (AWS_PROFILE).
    Exit 1 when something is missing (each with its fix)."""
    import boto3

    from cli import preflight as checks

    if boto3.Session().get_credentials() is None:
        raise CliError(
            "no AWS credentials found: nothing checked",
            "set AWS_PROFILE, aws sso login, or environment credentials",
            EXIT_CREDENTIALS,
        )
    code = checks.main(["--cdk-out", str(cdk_out)])
    if code:
        raise typer.Exit(code)


@app.command()
@guarded
def cost(cdk_out: CdkOutArgument = Path("cdk.out"), output: OutputOption = Output.table) -> None:
    """Estimated idle cost a month per stage and cost per 1,000 requests per endpoint, from
    the synthesized templates (exit 1 when a resource type cannot be priced)."""
    from cli.cost import print_costs, stage_cost_report, unpriced

    report = stage_cost_report(cdk_out)
    _emit(output, report, lambda: print_costs(report))
    missing = unpriced(report)
    if missing:
        raise CliError(f"cannot price {', '.join(missing)}", "add them to costing/")
