"""Names derive from project + env + branch slug in one place and respect service limits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.config import branch_slug
from infra.naming import IAM_ROLE_MAX, SAGEMAKER_MAX, Naming, slugify

REPO = Path(__file__).resolve().parents[2]


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


LONG_BRANCH = "feature/a-really-long-branch-name-that-goes-on-and-on-forever"
# Known answers: sha256 of the full slug, first 8 hex digits. A per-process hash (``hash()``),
# another digest or another length changes them, and with them every deployed physical name.
KNOWN_NAMES = {
    "branch_slug": "feature-a-reall-d9f02929",
    "resource": "mlops-br-feature-a-really-long-b-12345678-deploy-workf-71954961",
}


def _names() -> dict[str, str]:
    naming = Naming("mlops", "br-feature-a-really-long-b-12345678")
    return {
        "branch_slug": branch_slug(LONG_BRANCH),
        "resource": naming.resource("deploy-workflow-execution-role-with-long-suffix"),
    }


def test_shortening_hash_has_known_answers() -> None:
    assert _names() == KNOWN_NAMES


_PRINT_NAMES = (
    "import json; from tests.foundation.test_naming import _names; print(json.dumps(_names()))"
)


def test_shortening_hash_is_stable_across_processes() -> None:
    # str hashes are salted per process (PYTHONHASHSEED): a name built from hash() would differ.
    outputs = []
    for seed in ("1", "2", "random"):
        result = subprocess.run(
            [sys.executable, "-c", _PRINT_NAMES],
            cwd=REPO,
            env=dict(os.environ, PYTHONHASHSEED=seed),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        outputs.append(json.loads(result.stdout))
    assert outputs == [KNOWN_NAMES] * 3
