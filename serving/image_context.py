"""The serving image's Dockerfile and build context, for CDK and for the GitHub workflow.

``CONTEXT_EXCLUDE`` (gitignore syntax, CDK ``IgnoreMode.GIT``) excludes the whole repository but
the files ``serving/image/Dockerfile`` copies: a directory excluded with ``/*`` is never walked,
so .venv, node_modules, cdk.out, .work and tests cost nothing when CDK fingerprints the context
at synth. ``stage(target)`` copies the same files into a directory (the workflow builds the
image from there, so it builds exactly what CDK would upload):

    python -m serving.image_context DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "serving/image/Dockerfile"

#: Every file of the build context (repository paths); the Dockerfile COPYs exactly these.
CONTEXT_FILES = (
    "serving/image/Dockerfile",
    "serving/image/requirements.txt",
    "serving/__init__.py",
    "serving/asgi.py",
    "serving/serve.py",
    "serving/server.py",
    "pipelines/__init__.py",
    "pipelines/model_build/__init__.py",
    "pipelines/model_build/model_code/inference.py",
    "pipelines/model_build/model_code/model_format.py",
    "pipelines/model_build/model_code/data_capture.py",
)


def _exclude(files: tuple[str, ...]) -> tuple[str, ...]:
    """gitignore patterns that keep exactly ``files``: each directory on the way is re-included
    and its other entries excluded again (``/*``) before the file itself is re-included."""
    patterns = ["/*"]
    opened: set[str] = set()
    for path in files:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in opened:
                opened.add(directory)
                patterns += [f"!/{directory}/", f"/{directory}/*"]
        patterns.append(f"!/{path}")
    return tuple(patterns)


CONTEXT_EXCLUDE = _exclude(CONTEXT_FILES)


def stage(target: Path, root: Path = REPO_ROOT) -> list[Path]:
    """Copy the build context into ``target`` (created); returns the copied files."""
    copied = []
    for path in CONTEXT_FILES:
        destination = target / path
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / path, destination)
        copied.append(destination)
    return copied


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m serving.image_context DIR", file=sys.stderr)
        return 2
    try:
        files = stage(Path(args[0]))
    except OSError as exc:
        print(f"error: staging the build context: {exc}", file=sys.stderr)
        return 1
    print(f"staged {len(files)} files into {args[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
