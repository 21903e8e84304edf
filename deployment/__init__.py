"""Approval-driven model deployment: EventBridge rule -> trigger -> Step Functions workflow.

:mod:`deployment.infrastructure` holds the CDK construct, :mod:`deployment.workflow` the state
machine definition, :mod:`deployment.promote` the staging-to-prod promotion tool.
"""
