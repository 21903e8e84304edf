"""``mlops promote``: an approved staging version to prod, by :func:`deployment.promote.promote`
(the one promotion code path: the promotion pipeline's PromoteModel step runs this command)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from cli.aws import client, session
from cli.errors import CliError
from deployment.promote import (
    PromotionError,
    PromotionNames,
    artifacts_bucket_from_stack,
    promote,
)
from infra.naming import Naming


def run_promote(
    package_arn: str,
    *,
    project: str,
    source_profile: str | None,
    target_profile: str | None,
    region: str | None,
    target_bucket: str | None,
    dry_run: bool,
    allow_missing_baselines: bool = False,
) -> dict[str, Any]:
    source = session(source_profile, region)
    target = session(target_profile, region)
    try:
        bucket = target_bucket or artifacts_bucket_from_stack(
            client(target, "cloudformation"), Naming(project, "prod").stack("stateful")
        )
        result = promote(
            package_arn,
            source=source,
            target=target,
            names=PromotionNames.for_project(project, bucket),
            dry_run=dry_run,
            allow_missing_baselines=allow_missing_baselines,
        )
    except PromotionError as error:
        raise CliError(f"promotion refused: {error}", "mlops status --env staging") from error
    return asdict(result)
