"""Names derive from project + env + branch slug in one place and respect service limits."""

from __future__ import annotations

import re

import pytest

from infra.config import branch_slug
from infra.naming import IAM_ROLE_MAX, SAGEMAKER_MAX, Naming, slugify


@pytest.mark.parametrize(
    ("branch", "slug"),
    [
        ("feat/Drift_Alarm", "feat-drift-alarm"),
        ("Feature/JIRA-123__fix", "feature-jira-123-fix"),
        ("hotfix/v2.1", "hotfix-v2-1"),
        ("main", "main"),
        ("users/ana/ÜberFix", "users-ana-berfix"),
    ],
)
def test_branch_slug(branch: str, slug: str) -> None:
    assert branch_slug(branch) == slug


def test_long_branch_slug_is_truncated_with_a_stable_hash() -> None:
    branch = "feature/a-really-long-branch-name-that-goes-on-and-on-forever"
    slug = branch_slug(branch)
    assert len(slug) <= 24
    assert re.fullmatch(r"[a-z0-9-]+-[0-9a-f]{8}", slug)
    assert slug == branch_slug(branch)  # stable across calls
    assert slug != branch_slug(branch + "-2")  # and distinct for a different branch


SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@pytest.mark.parametrize(
    "branch",
    ["x", "feat/Drift_Alarm", "a" * 200, "release/2026.11/very-long-topic-name-with-many-words"],
)
def test_derived_names_fit_service_limits(branch: str) -> None:
    naming = Naming("mlops-platform-team", f"br-{branch_slug(branch)}")
    for name in (naming.model_package_group, naming.pipeline, naming.endpoint):
        assert len(name) <= SAGEMAKER_MAX and SAGEMAKER_NAME.match(name), name
    assert len(naming.resource("deploy-workflow-execution-role", IAM_ROLE_MAX)) <= IAM_ROLE_MAX
    glue = naming.glue("lake")
    assert re.fullmatch(r"[a-z0-9_]+", glue)


def test_names_are_prefixed_by_project_and_environment() -> None:
    naming = Naming("mlops", "prod")
    assert naming.model_package_group == "mlops-prod-models"
    assert naming.glue("lake") == "mlops_prod_lake"
    assert slugify("--A__b--") == "a-b"
