"""The GitHub workflows, parsed as YAML and asserted; then the real linters over them (zizmor
offline, check-jsonschema with its vendored GitHub-workflow schema)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.ci_settings import main as ci_settings_main
from infra.ci_settings import setting
from infra.config import ConfigError, load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
TOOLS_BIN = REPO_ROOT / ".venv-tools" / "bin"
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40}$")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
#: Contexts an attacker can shape (branch names, titles, bodies...): never inside `run:`.
UNTRUSTED = re.compile(r"\b(github|inputs|steps\.[\w-]+\.outputs)\b")


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(data, dict)
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def all_workflows() -> list[str]:
    return sorted(p.name for p in WORKFLOWS.glob("*.yml"))


@pytest.fixture(scope="module")
def deploy() -> dict[str, Any]:
    return load("branch-deploy.yml")


@pytest.fixture(scope="module")
def destroy() -> dict[str, Any]:
    return load("branch-destroy.yml")


def test_deploy_runs_on_pushes_of_every_branch_but_the_default_one(
    deploy: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    assert set(deploy["on"]) == {"push"}
    push = deploy["on"]["push"]
    assert push["branches-ignore"] == [cdk_context["mlops"]["default_branch"]]
    assert "branches" not in push  # branches and branches-ignore cannot be combined
    assert push["tags-ignore"] == ["**"]  # a pushed tag is not a branch


def test_destroy_runs_on_branch_deletion_only(destroy: dict[str, Any]) -> None:
    assert destroy["on"] == {"delete": None}
    (job,) = destroy["jobs"].values()
    assert job["if"] == "github.event.ref_type == 'branch'"  # not a deleted tag
    assert job["env"]["BRANCH"] == "${{ github.event.ref }}"  # the deleted branch


@pytest.mark.parametrize("name", ["branch-deploy.yml", "branch-destroy.yml"])
def test_least_privilege_permissions(name: str) -> None:
    workflow = load(name)
    assert workflow["permissions"] == {}  # nothing at workflow level
    for job in workflow["jobs"].values():
        # the OIDC token (id-token: write) and reading the repository, nothing else
        assert job["permissions"] == {"contents": "read", "id-token": "write"}


def test_ci_reads_only_and_gets_no_oidc_token() -> None:
    ci = load("ci.yml")
    assert ci["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in ci["jobs"].values())


def test_one_run_per_branch_deploy_never_cancelled_destroy_waits(
    deploy: dict[str, Any], destroy: dict[str, Any]
) -> None:
    assert deploy["concurrency"] == {
        "group": "branch-env-${{ github.ref_name }}",
        "cancel-in-progress": False,
    }
    # the same group for the same branch (a delete event's ref is the branch's short name, as
    # a push's ref_name is), so a destroy queues behind a running deploy
    assert destroy["concurrency"] == {
        "group": "branch-env-${{ github.event.ref }}",
        "cancel-in-progress": False,
    }


@pytest.mark.parametrize("name", all_workflows())
def test_actions_pinned_to_full_commit_shas_and_no_persisted_credentials(name: str) -> None:
    workflow = load(name)
    uses = [step for step in steps(workflow) if "uses" in step]
    assert uses
    for step in uses:
        assert SHA_PIN.match(step["uses"]), step["uses"]
        if step["uses"].startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("name", all_workflows())
def test_no_expression_inside_run_scripts(name: str) -> None:
    """Branch names and other event data reach scripts through env vars, never by
    interpolation into the script text (script injection)."""
    for step in steps(load(name)):
        if "run" in step:
            assert "${{" not in step["run"], (step.get("name"), step["run"])


@pytest.mark.parametrize("name", ["branch-deploy.yml", "branch-destroy.yml"])
def test_branch_name_checked_before_use(name: str) -> None:
    workflow = load(name)
    (job,) = workflow["jobs"].values()
    runs = [step["run"] for step in job["steps"] if "run" in step]
    guard = runs[0]
    pattern = re.search(r"=~ (\S+) \]\]", guard)
    assert pattern and "$BRANCH" in guard and "exit 1" in guard
    regex = re.compile(pattern.group(1))
    for good in ("feat/x", "fix/Some_Thing-2", "release/1.2"):
        assert regex.match(good)
    for bad in ("feat/$(id)", "a;b", "x'y", "-rf", "a b", "a`id`"):
        assert not regex.match(bad), bad
    # the guard runs before any step that uses the branch or holds credentials
    assert job["steps"].index(next(s for s in job["steps"] if s.get("run") == guard)) == 0
    # and bash itself agrees (GitHub runs `run:` with bash -e)
    for branch, status in (("feat/x", 0), ("feat/$(touch pwned)", 1), ("a'b", 1), ("", 1)):
        result = subprocess.run(
            ["bash", "-e", "-c", guard], env={"BRANCH": branch}, capture_output=True, text=True
        )
        assert result.returncode == status, (branch, result.stdout)


def _credential_step(job: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    for index, step in enumerate(job["steps"]):
        if step.get("uses", "").startswith("aws-actions/configure-aws-credentials@"):
            return index, step
    raise AssertionError("no configure-aws-credentials step")


def test_deploy_installs_and_gates_as_ci_then_deploys_with_the_oidc_role(
    deploy: dict[str, Any],
) -> None:
    (job,) = deploy["jobs"].values()
    runs = [step.get("run", "") for step in job["steps"]]
    gate = runs.index(".ci/run")  # install + make test + synth with gates + make lint
    index, credentials = _credential_step(job)
    final = job["steps"][-1]["run"]
    assert gate < index < len(runs) - 1
    assert final == 'make deploy BRANCH="$BRANCH" YES=1'
    assert job["env"]["BRANCH"] == "${{ github.ref_name }}"
    # role and region come from cdk.json through infra.ci_settings, never written here
    settings = next(step for step in job["steps"] if step.get("id") == "settings")
    assert "python -m infra.ci_settings deploy-role-arn" in settings["run"]
    assert "python -m infra.ci_settings region" in settings["run"]
    assert job["steps"].index(settings) < index
    assert credentials["with"]["role-to-assume"] == "${{ steps.settings.outputs.role }}"
    assert credentials["with"]["aws-region"] == "${{ steps.settings.outputs.region }}"
    assert "aws-access-key-id" not in credentials["with"]  # OIDC only, no stored keys
    # no credentials before the gates ran (tests and third-party installs see none)
    assert all("aws-actions" not in step.get("uses", "") for step in job["steps"][:gate])


def test_destroy_tears_down_then_cdk_destroy_via_make(destroy: dict[str, Any]) -> None:
    (job,) = destroy["jobs"].values()
    runs = [step.get("run", "") for step in job["steps"]]
    assert "make install PYTHON=python" in runs
    index, credentials = _credential_step(job)
    assert runs.index("make install PYTHON=python") < index
    assert credentials["with"]["role-to-assume"] == "${{ steps.settings.outputs.role }}"
    assert job["steps"][-1]["run"] == 'make destroy BRANCH="$BRANCH" YES=1'


#: given on the command line: make -n need not start Python to compute it (mlops stage-name)
STAGE = "STAGE=mlops-br-feat-x"


def test_make_destroy_runs_the_teardown_before_cdk_destroy() -> None:
    """What `make destroy` (the destroy workflow's last step) runs, in order."""
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "destroy", "BRANCH=feat/x", "YES=1", STAGE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    teardown = next(i for i, line in enumerate(out) if "bin/mlops teardown" in line)
    destroy = next(i for i, line in enumerate(out) if line.startswith("cdk destroy"))
    assert teardown < destroy
    assert "--branch 'feat/x'" in out[teardown]
    assert "-c branch=feat/x" in out[destroy]
    # YES=1: no prompt from either (a workflow has no terminal to answer it)
    assert "--yes" in out[teardown].split()
    assert "--force" in out[destroy].split()


def test_make_deploy_yes_skips_the_approval_prompt() -> None:
    def dry_run(*extra: str) -> str:
        out = subprocess.run(
            ["make", "-n", "--no-print-directory", "deploy", "BRANCH=feat/x", STAGE, *extra],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return next(line for line in out.splitlines() if line.startswith("cdk deploy"))

    assert "--require-approval never" in dry_run("YES=1")
    assert "--require-approval" not in dry_run()


# ----------------------------------------------------------------------------------------------
# infra.ci_settings: what the workflows read from cdk.json


def test_ci_settings_print_the_role_and_region_from_cdk_json(
    capsys: pytest.CaptureFixture[str], cdk_context: dict[str, Any]
) -> None:
    config = load_config(cdk_context["mlops"])
    assert setting(config, "region") == cdk_context["mlops"]["environments"]["dev"]["region"]
    role = cdk_context["mlops"]["branch_environments"]["deploy_role_arn"]
    assert setting(config, "deploy-role-arn", allow_placeholder=True) == role
    # the shipped placeholder dev account is refused: nothing deploys into 111111111111
    with pytest.raises(ConfigError, match=r"environments\.dev\.account"):
        setting(config, "deploy-role-arn")
    assert ci_settings_main(["deploy-role-arn"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "placeholder" in err
    assert ci_settings_main(["deploy-role-arn", "--allow-placeholder"]) == 0
    assert capsys.readouterr().out == role + "\n"


def test_ci_settings_without_a_role_says_what_to_set(mlops_config: dict[str, Any]) -> None:
    mlops_config["environments"]["dev"]["account"] = "123456789012"
    mlops_config["branch_environments"]["deploy_role_arn"] = None
    with pytest.raises(ConfigError, match=r"branch_environments\.deploy_role_arn"):
        setting(load_config(mlops_config), "deploy-role-arn")


# ----------------------------------------------------------------------------------------------
# The real linters


def _tool(name: str) -> Path:
    path = TOOLS_BIN / name
    assert path.exists(), f"{path} is absent: run `make install` (it creates .venv-tools)"
    return path


def test_zizmor_offline_finds_nothing() -> None:
    result = subprocess.run(
        [str(_tool("zizmor")), "--offline", "--no-progress", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout


def test_zizmor_notices_an_unpinned_action(tmp_path: Path) -> None:
    """The linter is live: a tag-pinned action and a persisted token are findings."""
    text = (WORKFLOWS / "branch-deploy.yml").read_text()
    text = re.sub(r"actions/checkout@[0-9a-f]{40}", "actions/checkout@v4", text)
    (tmp_path / "bad.yml").write_text(text.replace("persist-credentials: false", "fetch-depth: 1"))
    result = subprocess.run(
        [str(_tool("zizmor")), "--offline", "--no-progress", str(tmp_path / "bad.yml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "unpinned-uses" in result.stdout and "artipacked" in result.stdout


def test_check_jsonschema_validates_every_workflow(tmp_path: Path) -> None:
    tool = _tool("check-jsonschema")
    files = [str(WORKFLOWS / name) for name in all_workflows()]
    base = [str(tool), "--builtin-schema", "vendor.github-workflows"]
    ok = subprocess.run([*base, *files], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # and it rejects a broken one (a job without runs-on)
    bad = tmp_path / "bad.yml"
    bad.write_text((WORKFLOWS / "branch-destroy.yml").read_text().replace("runs-on:", "run-on:"))
    broken = subprocess.run([*base, str(bad)], capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1, broken.stdout
