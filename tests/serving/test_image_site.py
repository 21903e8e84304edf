"""The serving tests' processes see the image's packages: scikit-learn is hidden from them
(``image_site/sitecustomize.py``), because the image does not install it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

IMAGE_SITE = Path(__file__).resolve().parent / "image_site"  # the conftest's, by path
REPO = Path(__file__).resolve().parents[2]
IMAGE_REQUIREMENTS = REPO / "serving" / "image" / "requirements.txt"


def hidden_modules() -> tuple[str, ...]:
    """``NOT_IN_IMAGE``, read from the file (importing it would hide them in this process)."""
    tree = ast.parse((IMAGE_SITE / "sitecustomize.py").read_text())
    (value,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["NOT_IN_IMAGE"]
    ]
    return tuple(ast.literal_eval(value))


def requirement_names(text: str) -> set[str]:
    """Distribution names (PEP 503 normalized) of a pip requirements file."""
    names = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.match(r"[A-Za-z0-9._-]+", line)
            assert match, line
            names.add(re.sub(r"[-_.]+", "-", match.group(0)).lower())
    return names


def test_what_is_hidden_is_not_in_the_image() -> None:
    names = requirement_names(IMAGE_REQUIREMENTS.read_text())
    assert {"xgboost-cpu", "numpy", "uvicorn"} <= names  # the parser reads the real file
    assert hidden_modules() == ("sklearn",)
    assert "scikit-learn" not in names and "sklearn" not in names


def test_a_process_started_here_runs_xgboost_as_the_image_does() -> None:
    """Started with this package's environment (the autouse fixture's PYTHONPATH)."""
    probe = (
        "import importlib.util, sys\n"
        "import xgboost.compat\n"
        "try:\n"
        "    import sklearn\n"
        "except ModuleNotFoundError as exc:\n"
        "    print('hidden:', exc)\n"
        "print('xgboost without scikit-learn:', not xgboost.compat.SKLEARN_INSTALLED)\n"
        "print('numpy found:', importlib.util.find_spec('numpy') is not None)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == [
        "hidden: No module named 'sklearn' (not in the serving image)",
        "xgboost without scikit-learn: True",
        "numpy found: True",
    ]
