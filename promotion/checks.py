"""The promotion pipeline's checks of the staging endpoint (run in its CodeBuild steps).

``python -m promotion.checks smoke --endpoint NAME [--profile P] [--region R]``
    The deployment workflow's smoke test (the same code: ``lambdas/smoke_test``, the same sample
    row) against the endpoint. Prints the ARN of the model version the endpoint serves (its
    ``model-package-arn`` tag, written by the deployment workflow), and nothing else on stdout:
    the version that was tested, which the pipeline promotes to prod.

``python -m promotion.checks served --endpoint NAME [--expect ARN] [--profile P] [--region R]``
    Prints the version the endpoint serves; with ``--expect``, fails unless it is that one
    (after the load test: staging still serves what the smoke test saw).

Exit status: 0 passed, 1 a check failed, 2 bad arguments. Every failure is one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from deployment.promote import PACKAGE_TAG


class CheckFailed(Exception):
    """The staging endpoint failed a check; the message says how, in one line."""


def served_package(sagemaker: Any, endpoint: str) -> str:
    """The model version an ``InService`` endpoint serves, from the deployment workflow's tag."""
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
        status = described.get("EndpointStatus")
        if status != "InService":
            raise CheckFailed(f"endpoint {endpoint} is {status}, not InService")
        tags = sagemaker.list_tags(ResourceArn=described["EndpointArn"]).get("Tags", [])
    except (ClientError, BotoCoreError) as error:
        raise CheckFailed(f"endpoint {endpoint}: {error}") from error
    served = {tag["Key"]: tag["Value"] for tag in tags}.get(PACKAGE_TAG)
    if not served:
        raise CheckFailed(
            f"endpoint {endpoint} has no {PACKAGE_TAG} tag: it was not deployed by the "
            "deployment workflow (approve a model version in staging first)"
        )
    return str(served)


def smoke(sagemaker: Any, runtime: Any, endpoint: str) -> tuple[str, dict[str, Any]]:
    """Run the workflow's smoke test; the version served before and after it (the same)."""
    # The Lambda handler's module: Powertools' tracer is off outside Lambda, say so explicitly.
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    from deployment.infrastructure import FEATURE_COUNT
    from lambdas.smoke_test.handler import SmokeTestEvent, SmokeTestFailed, run_smoke_test
    from stacks.deployment_stack import smoke_test_row

    before = served_package(sagemaker, endpoint)
    event = SmokeTestEvent.model_validate(
        {"endpointName": endpoint, "csvRow": smoke_test_row(), "featureCount": FEATURE_COUNT}
    )
    try:
        result = run_smoke_test(event, runtime=runtime)
    except SmokeTestFailed as error:
        raise CheckFailed(f"smoke test of {endpoint} failed: {error}") from error
    after = served_package(sagemaker, endpoint)
    if after != before:
        raise CheckFailed(f"{endpoint} switched from {before} to {after} during the smoke test")
    return after, asdict(result)


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m promotion.checks", description="Checks of the staging endpoint."
    )
    parser.add_argument("check", choices=("smoke", "served"))
    parser.add_argument("--endpoint", required=True, help="the SageMaker endpoint name")
    parser.add_argument("--profile", help="AWS profile for the endpoint's account")
    parser.add_argument("--region", help="the endpoint's region (default: the profile's)")
    parser.add_argument("--expect", help="served: the model package ARN that must be served")
    args = parser.parse_args(argv)
    if args.expect is not None and args.check != "served":
        parser.error("--expect applies to the served check")
    try:
        if session is None:
            import boto3

            session = boto3.Session(profile_name=args.profile, region_name=args.region)
        sagemaker = session.client("sagemaker")
        if args.check == "served":
            served = served_package(sagemaker, args.endpoint)
            if args.expect is not None and served != args.expect:
                raise CheckFailed(
                    f"{args.endpoint} serves {served}, not the tested {args.expect or '(none)'}"
                )
        else:
            from lambdas.smoke_test.handler import BOTO_CONFIG

            runtime = session.client("sagemaker-runtime", config=BOTO_CONFIG)
            served, result = smoke(sagemaker, runtime, args.endpoint)
            print(f"smoke test passed: {json.dumps(result)}", file=sys.stderr)
    except CheckFailed as error:
        print(f"check failed: {error}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as error:  # no credentials, unknown profile or region
        print(f"check failed: {error}", file=sys.stderr)
        return 1
    print(served)
    return 0


if __name__ == "__main__":
    sys.exit(main())
