"""Security gates that can fail: cdk-nag rule packs run explicitly on every Stage.

cdk-nag's synth-time plugin does not look inside ``Stage`` constructs, so :func:`enforce` validates
each stage itself with every pack and raises :class:`ComplianceError`, listing each unacknowledged
finding, when anything is left. Acknowledgments go through :func:`acknowledge`, which insists on
the exact finding id and a specific reason.

checkov's CloudFormation checks run over the synthesized templates (``make lint``, the test suite).
A check that does not apply is skipped in the template itself, on the one resource, with a reason:
``Metadata: {checkov: {skip: [{id, comment}]}}``, written by :func:`skip_checkov` (same rules for
the reason as an acknowledgment). Skips that hold for every resource of a kind in every stage
(CDK's own handlers, say) are listed once in :data:`STAGE_CHECKOV_SKIPS` and applied to each Stage
by the :class:`CheckovSkips` aspect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import jsii
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks, ServerlessChecks
from constructs import IConstruct

RULE_PACKS = (AwsSolutionsChecks, NIST80053R5Checks, ServerlessChecks)

_FINDING_ID = re.compile(r"^(AwsSolutions|NIST\.800\.53\.R5|Serverless)-[A-Za-z0-9]+(\[.+\])?$")
_WEAK_REASONS = re.compile(r"^\s*(todo|tbd|fixme|n/?a|none|ok|suppress(ed)?|ignore(d)?)\W*$", re.I)
# A long reason can still be a placeholder: "TODO: explain why this is fine".
_PLACEHOLDER_WORDS = re.compile(r"\b(todo|tbd|fixme|xxx|placeholder|lorem ipsum)\b", re.I)
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


def _check_reason(what: str, reason: Any) -> None:
    if (
        not isinstance(reason, str)
        or len(reason.strip()) < MIN_REASON_LENGTH
        or _WEAK_REASONS.match(reason)
        or _PLACEHOLDER_WORDS.search(reason)
    ):
        raise ValueError(f"{what} needs a specific reason, got {reason!r}")


def _acknowledgment(finding_id: str, reason: str) -> cdk.Acknowledgment:
    if not _FINDING_ID.match(finding_id):
        raise ValueError(f"not a cdk-nag finding id: {finding_id!r}")
    _check_reason(f"acknowledgment of {finding_id}", reason)
    return cdk.Acknowledgment(id=finding_id, reason=reason)


class _LastValidations:
    """``Validations.of`` of the construct acknowledged last: acknowledgments come in runs on
    one construct, and each ``Validations.of`` is a jsii round trip (the object only holds its
    scope). Holds one construct at a time."""

    construct: IConstruct | None = None
    validations: cdk.Validations | None = None

    @classmethod
    def of(cls, construct: IConstruct) -> cdk.Validations:
        if cls.validations is None or cls.construct is not construct:
            cls.construct, cls.validations = construct, cdk.Validations.of(construct)
        return cls.validations


def _record(construct: IConstruct, acknowledgments: Sequence[cdk.Acknowledgment]) -> None:
    # One call for them all: Validations.acknowledge records each rule in order, as one call
    # per rule would (node metadata "aws:cdk:acknowledged-rules", then the warning acknowledgment).
    if acknowledgments:
        _LastValidations.of(construct).acknowledge(*acknowledgments)


def acknowledge(construct: IConstruct, finding_id: str, reason: str) -> None:
    """Acknowledge one exact cdk-nag finding on ``construct`` (and its children)."""
    _record(construct, [_acknowledgment(finding_id, reason)])


def acknowledge_all(construct: IConstruct, finding_ids: Iterable[str], reason: str) -> None:
    # Every id is checked before any is recorded.
    _record(construct, [_acknowledgment(finding_id, reason) for finding_id in finding_ids])


def acknowledge_basic_execution_role(role: IConstruct) -> None:
    """A Lambda function's role with the AWS-managed AWSLambdaBasicExecutionRole policy."""
    acknowledge(
        role,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaBasicExecutionRole]",
        "The AWS-managed basic execution policy only lets the function write its own logs.",
    )


S3_GRANT_ACTIONS = ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*")
KMS_GRANT_ACTIONS = ("kms:ReEncrypt*", "kms:GenerateDataKey*")


def acknowledge_grant_actions(
    construct: IConstruct, *, applies_to: str, s3: bool = True, kms: bool = True
) -> None:
    """Acknowledge the action wildcards CDK's ``grant_*`` methods emit (``s3:GetObject*``,
    ``kms:GenerateDataKey*``...). They are CDK's fixed action groups; what they apply to is what
    the caller states in ``applies_to`` (and what its resource findings acknowledge)."""
    actions = (S3_GRANT_ACTIONS if s3 else ()) + (KMS_GRANT_ACTIONS if kms else ())
    reason = f"Action group emitted by CDK's grant_* methods, applied only to {applies_to}."
    acknowledge_all(
        construct, [f"AwsSolutions-IAM5[Action::{action}]" for action in actions], reason
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


# --------------------------------------------------------------------------------------------
# checkov

CHECKOV_ID = re.compile(r"^CKV2?_AWS_[0-9]+$")
CHECKOV_METADATA = "checkov"


_CLASS_RESOURCE_TYPES: dict[type, str] = {}


def cfn_resource_type(resource: cdk.CfnResource) -> str:
    """``resource.cfn_resource_type``, read once per L1 class (an L1 class has one type, its
    ``CFN_RESOURCE_TYPE_NAME``) and per resource only for plain ``CfnResource`` (custom resources
    and the like, whose type is per instance). Each read is a jsii round trip."""
    cls = type(resource)
    known = _CLASS_RESOURCE_TYPES.get(cls)
    if known is not None:
        return known
    resource_type = resource.cfn_resource_type
    if cls is not cdk.CfnResource and getattr(cls, "CFN_RESOURCE_TYPE_NAME", None) == resource_type:
        _CLASS_RESOURCE_TYPES[cls] = resource_type  # a class property: one jsii call per class
    return resource_type


def _cfn_resource(construct: IConstruct) -> cdk.CfnResource:
    if isinstance(construct, cdk.CfnResource):
        return construct
    child = construct.node.default_child
    if not isinstance(child, cdk.CfnResource):
        raise ValueError(f"{construct.node.path} is not a CloudFormation resource")
    return child


def skip_checkov(construct: IConstruct, check_id: str, reason: str) -> None:
    """Skip one checkov check on one resource, recorded in its template metadata with a reason.

    ``construct`` is a CfnResource or an L2 construct (its default child). Skipping the same check
    twice keeps one entry, with the latest reason."""
    if not CHECKOV_ID.match(check_id):
        raise ValueError(f"not a checkov CloudFormation check id: {check_id!r}")
    _check_reason(f"checkov skip of {check_id}", reason)
    resource = _cfn_resource(construct)
    existing = resource.get_metadata(CHECKOV_METADATA) or {}
    skips = [entry for entry in existing.get("skip", []) if entry.get("id") != check_id]
    skips.append({"id": check_id, "comment": reason})
    resource.add_metadata(CHECKOV_METADATA, {**existing, "skip": skips})


@dataclass(frozen=True)
class CheckovSkip:
    """Skip ``check_id`` on every ``resource_type`` resource whose construct path matches
    ``path`` (a regular expression searched in the path; any path when None)."""

    resource_type: str
    check_id: str
    reason: str
    path: str | None = None

    def applies_to(self, resource: cdk.CfnResource) -> bool:
        return resource.cfn_resource_type == self.resource_type and (
            self.path is None or re.search(self.path, resource.node.path) is not None
        )


@jsii.implements(cdk.IAspect)
class CheckovSkips:
    """Aspect: applies each :class:`CheckovSkip` to the resources it names (added per Stage)."""

    def __init__(self, skips: Sequence[CheckovSkip]) -> None:
        for skip in skips:  # fail at construction, not half-way through a synth
            if not CHECKOV_ID.match(skip.check_id):
                raise ValueError(f"not a checkov CloudFormation check id: {skip.check_id!r}")
            _check_reason(f"checkov skip of {skip.check_id}", skip.reason)
        self.skips = tuple(skips)

    def visit(self, node: IConstruct) -> None:
        # The same test as CheckovSkip.applies_to, and what skip_checkov does for each skip that
        # applies, with the metadata read and written once per resource.
        if not isinstance(node, cdk.CfnResource):
            return
        resource_type = cfn_resource_type(node)
        wanted = [skip for skip in self.skips if skip.resource_type == resource_type]
        if not wanted:
            return
        path = node.node.path if any(skip.path is not None for skip in wanted) else ""
        applied = [s for s in wanted if s.path is None or re.search(s.path, path) is not None]
        if not applied:
            return
        existing = node.get_metadata(CHECKOV_METADATA) or {}
        entries = list(existing.get("skip", []))
        for skip in applied:
            entries = [entry for entry in entries if entry.get("id") != skip.check_id]
            entries.append({"id": skip.check_id, "comment": skip.reason})
        node.add_metadata(CHECKOV_METADATA, {**existing, "skip": entries})


def apply_checkov_skips(scope: IConstruct, skips: Sequence[CheckovSkip]) -> None:
    """What the :class:`CheckovSkips` aspect does, done now to every construct under ``scope``.

    Call it once the last construct is added. A Python aspect costs a Node-to-Python callback
    per construct at synth (about a third of the app's jsii round trips); this walk costs one
    call plus one per CloudFormation resource."""
    visitor = CheckovSkips(skips)
    for node in scope.node.find_all():
        visitor.visit(node)


# CDK's own singleton handlers (BucketDeployment, S3 auto-delete objects): constructs we do not
# define, invoked synchronously by CloudFormation during deployment only.
_CDK_HANDLER = r"/(Custom::CDKBucketDeployment[0-9A-Fa-f]+[^/]*|Custom::S3AutoDeleteObjects[^/]*)/"

STAGE_CHECKOV_SKIPS: tuple[CheckovSkip, ...] = (
    CheckovSkip(
        "AWS::Lambda::Function",
        "CKV_AWS_115",
        "No reserved concurrency: a reservation lowers the account's unreserved pool, and "
        "accounts at the default quota refuse any reservation below 10 unreserved; these "
        "functions are invoked at most a few times per deployment (the workflow is serialized).",
    ),
    CheckovSkip(
        "AWS::Lambda::Function",
        "CKV_AWS_117",
        "Not in a VPC: the functions reach only AWS service APIs over HTTPS with IAM auth, no "
        "resource inside a VPC; a VPC would add NAT or endpoints without any isolation gain.",
    ),
    CheckovSkip(
        "AWS::Lambda::Function",
        "CKV_AWS_173",
        "Environment variables hold only resource names, ARNs and log settings, no secret; "
        "Lambda encrypts them at rest with an AWS managed key, a CMK would add nothing here.",
    ),
    CheckovSkip(
        "AWS::Lambda::Function",
        "CKV_AWS_116",
        "CDK's own custom-resource handler: CloudFormation invokes it synchronously and gets "
        "the error back; a dead-letter queue only receives failed asynchronous invocations.",
        path=_CDK_HANDLER,
    ),
)
