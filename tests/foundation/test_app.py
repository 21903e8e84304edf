"""The app end to end: branch resolution, stage set, synth summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli.summary import render
from infra.app_builder import current_git_branch, resolve_branch
from infra.config import ConfigError, load_config
from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES


def test_feature_branch_synth_adds_its_stage_to_the_shared_ones(synthesized: Any) -> None:
    assert [s.stage_name for s in synthesized.stages] == [*SHARED_STAGES, EPHEMERAL_STAGE]
    assert synthesized.report["branch"] == "feat/Some_Branch"
    manifests = sorted(p.name for p in Path(synthesized.assembly.directory).glob("assembly-*"))
    assert manifests == sorted(f"assembly-{s}" for s in (*SHARED_STAGES, EPHEMERAL_STAGE))


def test_stages_deploy_to_their_configured_accounts(
    synthesized: Any, cdk_context: dict[str, Any]
) -> None:
    envs = cdk_context["mlops"]["environments"]
    for stage in synthesized.stages:
        expected = envs["dev" if stage.stage_name == EPHEMERAL_STAGE else stage.config.env_name]
        assert (stage.account, stage.region) == (expected["account"], expected["region"])


def test_branch_comes_from_context_then_git_then_default(mlops_config: dict[str, Any]) -> None:
    config = load_config(mlops_config)
    assert resolve_branch("feat/x", config, "other") == "feat/x"
    assert resolve_branch(None, config, "feat/y") == "feat/y"
    assert resolve_branch(None, config, None) == "main"
    with pytest.raises(ConfigError, match="branch"):
        resolve_branch("  ", config, None)


def test_git_branch_is_none_outside_a_repository(tmp_path: Path) -> None:
    assert current_git_branch(tmp_path) is None


def test_summary_lists_stages_stacks_resources_and_gate(synthesized: Any) -> None:
    text = render(Path(synthesized.assembly.directory))
    for stage in (*SHARED_STAGES, EPHEMERAL_STAGE):
        assert stage in text
    assert "4 stages" in text
    assert "0 unacknowledged findings in every stage" in text
    assert "placeholder account id" in text
