"""Config's retention in days -> CDK's ``logs.RetentionDays`` (a named enum in jsii), and the
encrypted log group with that retention that the stage's functions and workflows write to."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

_BY_DAYS = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def retention_days(days: int) -> logs.RetentionDays:
    """Config validation already limits ``days`` to CloudWatch's allowed periods."""
    return _BY_DAYS[days]


def encrypted_log_group(
    scope: Construct,
    id_: str,
    *,
    name: str,
    key: kms.IKey,
    retention_days: int,
    removal_policy: cdk.RemovalPolicy,
) -> logs.LogGroup:
    """Log group ``name`` encrypted with ``key``, keeping events ``retention_days`` (set on the
    CloudFormation resource: any of CloudWatch's periods, which config validation checks)."""
    group = logs.LogGroup(
        scope, id_, log_group_name=name, encryption_key=key, removal_policy=removal_policy
    )
    cfn = group.node.default_child
    assert isinstance(cfn, logs.CfnLogGroup)
    cfn.retention_in_days = retention_days
    return group
