"""Security gates that can fail: cdk-nag rule packs run explicitly on every Stage.

cdk-nag's synth-time plugin does not look inside ``Stage`` constructs, so :func:`enforce` validates
each stage itself with every pack and raises :class:`ComplianceError`, listing each unacknowledged
finding, when anything is left. Acknowledgments go through :func:`acknowledge`, which insists on
the exact finding id and a specific reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks, ServerlessChecks
from constructs import IConstruct

RULE_PACKS = (AwsSolutionsChecks, NIST80053R5Checks, ServerlessChecks)

_FINDING_ID = re.compile(r"^(AwsSolutions|NIST\.800\.53\.R5|Serverless)-[A-Za-z0-9]+(\[.+\])?$")
_WEAK_REASONS = re.compile(r"^\s*(todo|tbd|fixme|n/?a|none|ok|suppress(ed)?|ignore(d)?)\W*$", re.I)
MIN_REASON_LENGTH = 25


@dataclass(frozen=True, order=True)
class Finding:
    rule: str
    resource: str
    description: str

    def __str__(self) -> str:
        return f"{self.rule} on {self.resource}: {self.description}"


class ComplianceError(Exception):
    def __init__(self, stage: str, findings: list[Finding]) -> None:
        self.findings = findings
        lines = "\n".join(f"  - {f}" for f in findings)
        super().__init__(
            f"security gate failed for stage {stage}: {len(findings)} unacknowledged "
            f"cdk-nag finding(s):\n{lines}"
        )


def acknowledge(construct: IConstruct, finding_id: str, reason: str) -> None:
    """Acknowledge one exact cdk-nag finding on ``construct`` (and its children)."""
    if not _FINDING_ID.match(finding_id):
        raise ValueError(f"not a cdk-nag finding id: {finding_id!r}")
    if len(reason.strip()) < MIN_REASON_LENGTH or _WEAK_REASONS.match(reason):
        raise ValueError(f"acknowledgment of {finding_id} needs a specific reason, got {reason!r}")
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=finding_id, reason=reason))


def acknowledge_all(construct: IConstruct, finding_ids: Iterable[str], reason: str) -> None:
    for finding_id in finding_ids:
        acknowledge(construct, finding_id, reason)


S3_GRANT_ACTIONS = ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*")
KMS_GRANT_ACTIONS = ("kms:ReEncrypt*", "kms:GenerateDataKey*")


def acknowledge_grant_actions(
    construct: IConstruct, *, applies_to: str, s3: bool = True, kms: bool = True
) -> None:
    """Acknowledge the action wildcards CDK's ``grant_*`` methods emit (``s3:GetObject*``,
    ``kms:GenerateDataKey*``...). They are CDK's fixed action groups; what they apply to is what
    the caller states in ``applies_to`` (and what its resource findings acknowledge)."""
    actions = (S3_GRANT_ACTIONS if s3 else ()) + (KMS_GRANT_ACTIONS if kms else ())
    for action in actions:
        acknowledge(
            construct,
            f"AwsSolutions-IAM5[Action::{action}]",
            f"Action group emitted by CDK's grant_* methods, applied only to {applies_to}.",
        )


def findings(scope: IConstruct) -> list[Finding]:
    """Every unacknowledged finding of every rule pack under ``scope``, sorted."""
    result: set[Finding] = set()
    for pack in RULE_PACKS:
        report = pack().validate_scope(scope)
        for violation in report.violations:
            for resource in violation.violating_resources:
                path = resource.construct_path or resource.resource_logical_id or "?"
                result.add(Finding(violation.rule_name, path, violation.description.strip()))
    return sorted(result)


def enforce(stage: cdk.Stage) -> int:
    """Raise :class:`ComplianceError` when ``stage`` has unacknowledged findings.

    Returns the number of rule packs that passed (for the synth summary)."""
    found = findings(stage)
    if found:
        raise ComplianceError(stage.stage_name, found)
    return len(RULE_PACKS)
