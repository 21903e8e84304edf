"""Template hygiene for resources CDK generates on our behalf.

CDK's own Lambda handlers (BucketDeployment, S3 auto-delete) both reference their role through
``Fn::GetAtt`` and list it in ``DependsOn``; cfn-lint reports the redundant ``DependsOn`` (W3005).
The reference already orders creation. Where the dependency is a resource-level one we remove it;
where CDK adds it at construct level (no API removes those) we tell cfn-lint, on that one resource,
that W3005 is expected. Any other dependency (for example on the role's policy) stays.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct

from infra.compliance import cfn_resource_type

REDUNDANT_DEPENDS_ON = "W3005"


def _role_logical_id(function: cdk.CfnResource) -> str | None:
    stack = cdk.Stack.of(function)
    if isinstance(function, lambda_.CfnFunction):
        resolved = stack.resolve(function.role)
    else:  # CfnResource-based providers (CustomResourceProvider) keep the role as a sibling
        scope = function.node.scope
        role = scope.node.try_find_child("Role") if scope is not None else None
        if not isinstance(role, cdk.CfnResource):
            return None
        resolved = {"Fn::GetAtt": [stack.get_logical_id(role), "Arn"]}
    if isinstance(resolved, dict) and "Fn::GetAtt" in resolved:
        target = resolved["Fn::GetAtt"][0]
        return target if isinstance(target, str) else None
    return None


def _logical_id(construct: IConstruct) -> str | None:
    cfn = construct if isinstance(construct, cdk.CfnResource) else construct.node.default_child
    return cdk.Stack.of(cfn).get_logical_id(cfn) if isinstance(cfn, cdk.CfnResource) else None


def drop_redundant_role_dependencies(scope: IConstruct) -> int:
    """Handle ``DependsOn`` from Lambda functions to the role they already reference.

    Returns how many functions had one."""
    handled = 0
    for node in scope.node.find_all():
        if not isinstance(node, cdk.CfnResource):
            continue
        if cfn_resource_type(node) != "AWS::Lambda::Function":
            continue
        role_id = _role_logical_id(node)
        if role_id is None:
            continue
        for dependency in node.obtain_dependencies():
            if isinstance(dependency, cdk.CfnResource) and _logical_id(dependency) == role_id:
                node.remove_resource_dependency(dependency)
                handled += 1
        if any(_logical_id(d) == role_id for d in node.node.dependencies):
            node.add_metadata("cfn-lint", {"config": {"ignore_checks": [REDUNDANT_DEPENDS_ON]}})
            handled += 1
    return handled
