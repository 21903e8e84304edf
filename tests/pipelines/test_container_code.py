"""Every Python file shipped into a SageMaker image runs there: Python 3.8, the image's packages.

What is shipped is read from what the build ships, not listed by hand: the code bundle
(``packaging.build_code_bundle``: processing scripts, ``model_code/`` and the training job's
``sourcedir.tar.gz``) and the serving code the Train step copies into the model artifact
(``train.SERVING_FILES``, ``inference.py`` among them). Each such file must be declared below with
the third-party modules its image provides; a new file without a declaration fails.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from mb_helpers import REPO_ROOT

from pipelines.model_build import contract, packaging
from pipelines.model_build.model_code import train
from serving import container_env

CONTAINER_CODE = {
    # path: third-party modules the image provides (or files shipped beside it)
    # pyarrow 14.0.1: conda-installed by the sklearn 1.2-1 base image (its Dockerfile.cpu)
    "pipelines/model_build/scripts/preprocess.py": {"numpy", "pandas", "pyarrow", "sklearn"},
    "pipelines/model_build/scripts/baseline.py": {"numpy", "pandas", "sklearn"},
    "pipelines/model_build/scripts/evaluate.py": {"numpy", "pandas", "sklearn", "xgboost"},
    "pipelines/model_build/model_code/train.py": {
        "numpy", "pandas", "sklearn", "xgboost", "model_format",
    },
    "pipelines/model_build/model_code/model_format.py": {"numpy", "xgboost"},
    "pipelines/model_build/model_code/inference.py": {
        "numpy", "xgboost", "model_format", "data_capture", "online_features",
    },
    # boto3 1.17.52 / botocore 1.20.52 in the XGBoost image (serving/container-requirements.txt)
    "pipelines/model_build/model_code/data_capture.py": {"boto3", "botocore"},
    "pipelines/model_build/model_code/online_features.py": {"boto3", "botocore"},
}  # fmt: skip


def shipped_files(out_dir: Path) -> set[str]:
    """Repository paths of the .py files the build puts into any image."""
    packaging.build_code_bundle(out_dir)
    shipped = {f"{contract.SCRIPTS_DIR}/{p.name}" for p in (out_dir / "scripts").glob("*.py")} | {
        f"{contract.MODEL_CODE_DIR}/{p.name}" for p in (out_dir / "model_code").glob("*.py")
    }
    with tarfile.open(out_dir / packaging.SOURCEDIR_ARCHIVE) as sourcedir:
        shipped |= {
            f"{contract.MODEL_CODE_DIR}/{n}" for n in sourcedir.getnames() if n.endswith(".py")
        }
    model_code = REPO_ROOT / contract.MODEL_CODE_DIR
    shipped |= {
        f"{contract.MODEL_CODE_DIR}/{n}"
        for n in train.SERVING_FILES
        if n.endswith(".py") and (model_code / n).is_file()
    }
    return shipped


def test_every_shipped_file_is_checked(tmp_path: Path) -> None:
    shipped = shipped_files(tmp_path / "bundle")
    # the model artifact carries its serving code: the handler and what it imports
    assert {"inference.py", "model_format.py"} <= set(train.SERVING_FILES)
    assert f"{contract.MODEL_CODE_DIR}/inference.py" in shipped
    assert shipped == set(CONTAINER_CODE)


def _imports(tree: ast.AST) -> set[str]:
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add((node.module or "").split(".")[0])
    return modules


def _post_38_calls(tree: ast.AST) -> list[str]:
    """Calls of APIs that Python 3.8 lacks (the parser's feature_version does not see these)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "zip" and node.keywords:
            found.append(f"line {node.lineno}: zip(strict=...) is Python >= 3.10")
        if isinstance(func, ast.Attribute) and func.attr in {"removeprefix", "removesuffix"}:
            found.append(f"line {node.lineno}: str.{func.attr} is Python >= 3.9")
    return found


@pytest.mark.parametrize("path", sorted(CONTAINER_CODE))
def test_container_code_is_python38_compatible_and_self_contained(path: str) -> None:
    source = (REPO_ROOT / path).read_text()
    tree = ast.parse(source, feature_version=(3, 8))  # the images run Python 3.8
    third_party = _imports(tree) - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party <= CONTAINER_CODE[path], third_party
    # Annotations such as `list[str] | None` must never be evaluated on Python 3.8.
    assert "from __future__ import annotations" in source
    assert _post_38_calls(tree) == []


def test_post_38_call_detection() -> None:
    tree = ast.parse("zip(a, b, strict=True)\nname.removeprefix('x')\nzip(a, b)\n")
    assert _post_38_calls(tree) == [
        "line 1: zip(strict=...) is Python >= 3.10",
        "line 2: str.removeprefix is Python >= 3.9",
    ]


COMPILE = "import sys\nfor p in sys.argv[1:]:\n    compile(open(p).read(), p, 'exec')"  # no .pyc


def test_container_code_compiles_under_a_real_python38() -> None:
    """The parser's feature_version is not the 3.8 grammar; the 3.8 interpreter is."""
    python, version = container_env.find_python()
    result = subprocess.run(
        [python, "-c", COMPILE, *(str(REPO_ROOT / p) for p in sorted(CONTAINER_CODE))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"Python {version}: {result.stderr}"
