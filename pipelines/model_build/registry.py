"""The stage's Model Package Group: stateful, it holds every registered model version."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct


class ModelRegistry(Construct):
    """One Model Package Group per stage; the pipeline registers into it and the deployment
    workflow listens to its approvals. Exposes ``group_name`` and ``group_arn``."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        group_name: str,
        description: str,
        removal_policy: cdk.RemovalPolicy,
        studio_project: str,
    ) -> None:
        super().__init__(scope, id_)
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=group_name,
            model_package_group_description=description,
        )
        self.group.apply_removal_policy(removal_policy)
        # Studio groups resources of one project by this tag.
        cdk.Tags.of(self.group).add("sagemaker:project-name", studio_project)
        self.group_name = group_name
        self.group_arn = self.group.attr_model_package_group_arn
