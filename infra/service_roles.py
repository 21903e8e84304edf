"""Roles that an AWS service assumes on behalf of exactly one of this stack's resources.

EventBridge rules and EventBridge Scheduler schedules call their targets with a role. Trusting the
service principal alone would let any rule or schedule (of any account) that names the role act
with it; AWS's confused-deputy guidance conditions the trust on ``aws:SourceAccount`` and
``aws:SourceArn``. That also keeps service principals out of topic and key policies.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct


def role_for_source(
    scope: Construct, id_: str, *, service: str, source_arn: str, description: str
) -> iam.Role:
    """A role only ``service`` (e.g. ``events.amazonaws.com``) may assume, and only for the
    resource ``source_arn`` in this stack's account."""
    return iam.Role(
        scope,
        id_,
        assumed_by=iam.ServicePrincipal(service).with_conditions(
            {
                "StringEquals": {"aws:SourceAccount": cdk.Stack.of(scope).account},
                "ArnEquals": {"aws:SourceArn": source_arn},
            }
        ),
        description=description,
    )
