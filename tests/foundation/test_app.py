"""The app end to end: branch resolution, stage set, synth summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.summary import render
from infra.app_builder import (
    cli_context,
    current_git_branch,
    resolve_branch,
    tree_metadata_wanted,
)
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


def test_tree_json_is_not_written_unless_asked(synthesized: Any) -> None:
    assembly = Path(synthesized.assembly.directory)
    assert not (assembly / "tree.json").exists()
    manifest = json.loads((assembly / "manifest.json").read_text())
    assert not [a for a in manifest["artifacts"].values() if a["type"] == "cdk:tree"]


@pytest.mark.parametrize(
    ("value", "wanted"),
    [(None, False), (False, False), (True, True), ("on", True), ("TRUE", True), ("off", False)],
)
def test_tree_metadata_values(value: Any, wanted: bool) -> None:
    assert tree_metadata_wanted(value) is wanted


@pytest.mark.parametrize("value", ["maybe", "", 1, ["on"]])
def test_a_bad_tree_metadata_value_is_a_config_error_naming_the_key(value: Any) -> None:
    with pytest.raises(ConfigError, match="tree-metadata"):
        tree_metadata_wanted(value)


def test_cli_context_reads_the_environment_then_the_overflow_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CONTEXT_OVERFLOW_LOCATION_ENV", raising=False)
    monkeypatch.setenv("CDK_CONTEXT_JSON", json.dumps({"tree-metadata": "on", "branch": "a"}))
    assert cli_context() == {"tree-metadata": "on", "branch": "a"}
    overflow = tmp_path / "context.json"
    overflow.write_text(json.dumps({"branch": "b"}))
    monkeypatch.setenv("CONTEXT_OVERFLOW_LOCATION_ENV", str(overflow))
    assert cli_context() == {"tree-metadata": "on", "branch": "b"}
    monkeypatch.delenv("CDK_CONTEXT_JSON")
    monkeypatch.delenv("CONTEXT_OVERFLOW_LOCATION_ENV")
    assert cli_context() == {}
