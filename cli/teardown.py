"""``mlops teardown``: remove what a branch stage created at run time (Model Monitor schedules
and job definitions, endpoint, endpoint configs, models, model versions) before ``cdk destroy``
removes its stacks (``make destroy``).

Only branch stages: on the default branch (or ``--branch`` naming it) the command refuses in one
line, exit 2, naming the shared stage ``cdk destroy`` would otherwise have removed; no AWS client
is made and nothing is asked. The deletion itself is :func:`sweeper.teardown.teardown`, which the
dev stage's sweeper Lambda runs too.
"""

from __future__ import annotations

from infra.config import StageConfig


def shared_stage_refusal(stage: StageConfig) -> str:
    """The one line ``make destroy`` prints when it would hit a shared stage."""
    return (
        f"refusing to destroy {stage.stage_id}: dev, staging and prod are shared stages of the "
        f"default branch {stage.branch!r}; make destroy removes branch stages only "
        "(make destroy BRANCH=feat/x)"
    )


def confirm_prompt(stage: StageConfig) -> str:
    return (
        f"Delete monitoring schedules, endpoint, models and model versions of "
        f"{stage.stage_id}? [y/N] "
    )
