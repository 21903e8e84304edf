"""A test-only venv holding the serving stack of AWS's prebuilt SageMaker XGBoost 1.7-1 image.

The image serves a single-model endpoint with Python 3.8, ``sagemaker-containers`` (Flask worker,
gunicorn with gevent workers) and xgboost 1.7.4; ``serving/container-requirements.txt`` pins
those open-source packages as the image does. This module builds a venv from that file with a
Python 3.8 interpreter, once per requirements content, under ``.work/container-venv/<key>/``
(a file lock lets parallel test workers share it; a marker written last means "complete").

    python -m serving.container_env     # build if needed, print the venv's python

The interpreter is, in this order: ``$CONTAINER_PYTHON``; ``python3.8`` on PATH if it runs;
``$PYENV_ROOT/versions/3.8.*/bin/python3.8`` (``~/.pyenv`` by default). Packages come from the
package index by name (pip's configuration applies). Any failure raises ``ContainerEnvError``
with one line saying what is missing: tests that need the venv fail, they do not skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = Path(__file__).resolve().with_name("container-requirements.txt")
PYTHON_VERSION = "3.8"
DEFAULT_ROOT = REPO_ROOT / ".work" / "container-venv"
MARKER = ".complete"
#: The image runs ``pip uninstall -y typing`` after installing its packages.
UNINSTALL = ("typing",)


class ContainerEnvError(Exception):
    """The container venv cannot be built here."""


def _version_of(python: str) -> str | None:
    try:
        result = subprocess.run(
            [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _candidates() -> Iterator[str]:
    if os.environ.get("CONTAINER_PYTHON"):
        yield os.environ["CONTAINER_PYTHON"]
        return
    on_path = shutil.which(f"python{PYTHON_VERSION}")
    if on_path:
        yield on_path
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for version_dir in sorted((pyenv_root / "versions").glob(f"{PYTHON_VERSION}.*"), reverse=True):
        yield str(version_dir / "bin" / f"python{PYTHON_VERSION}")
    yield f"/usr/bin/python{PYTHON_VERSION}"
    yield f"/usr/local/bin/python{PYTHON_VERSION}"


def find_python() -> tuple[str, str]:
    """``(interpreter, version)`` of a working Python 3.8."""
    tried = []
    for candidate in _candidates():
        version = _version_of(candidate)
        if version is not None and version.startswith(PYTHON_VERSION + "."):
            return candidate, version
        tried.append(candidate)
    raise ContainerEnvError(
        f"no Python {PYTHON_VERSION} interpreter (the SageMaker XGBoost 1.7-1 image's) found; "
        f"tried {', '.join(tried)}; set CONTAINER_PYTHON to one"
    )


def venv_key(python_version: str, requirements: Path = REQUIREMENTS) -> str:
    digest = hashlib.sha256(requirements.read_bytes())
    digest.update(python_version.encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise ContainerEnvError(f"{what} failed (exit {result.returncode}): {tail}")


def ensure_venv(root: Path = DEFAULT_ROOT, requirements: Path = REQUIREMENTS) -> Path:
    """The venv's python, building the venv first if this requirements file has none yet."""
    interpreter, version = find_python()
    venv = root / venv_key(version, requirements)
    python = venv / "bin" / "python"
    if (venv / MARKER).is_file():
        return python
    with _locked(root):
        if (venv / MARKER).is_file():  # another process built it while we waited
            return python
        if venv.exists():
            shutil.rmtree(venv)  # a build that did not finish
        _run([interpreter, "-m", "venv", str(venv)], f"creating a Python {version} venv")
        pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--no-input"]
        _run([*pip, "install", "-q", "-r", str(requirements)], f"pip install -r {requirements}")
        _run([*pip, "check"], "pip check")  # before the uninstall, which leaves a dangling need
        _run([*pip, "uninstall", "-q", "-y", *UNINSTALL], "pip uninstall " + " ".join(UNINSTALL))
        (venv / MARKER).write_text(f"python {version}\n{requirements.read_text()}")
    return python


def main() -> int:
    try:
        print(ensure_venv())
    except ContainerEnvError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
