"""The code bundle the pipeline's jobs run, built deterministically at synth time.

Layout (uploaded under ``s3://<artifacts>/code/model-build/<hash>/``)::

    scripts/<step>.py      processing steps' ``code=``
    model_code/*.py        imported by Preprocess (feature transform) and shipped in the model
    sourcedir.tar.gz       model_code as the training job's script-mode source directory

The hash covers every byte, so the pipeline definition changes exactly when the code does (and
step caching never serves results computed with other code).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import tarfile
from pathlib import Path

from pipelines.model_build import contract

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCEDIR_ARCHIVE = "sourcedir.tar.gz"
HASH_LENGTH = 16


def _sources(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.py") if p.is_file())


def _deterministic_tar_gz(files: list[Path]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(name=path.name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def build_code_bundle(out_dir: Path, repo_root: Path = REPO_ROOT) -> str:
    """Write the bundle into ``out_dir`` (emptied first) and return its content hash."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    scripts = _sources(repo_root / contract.SCRIPTS_DIR)
    model_code = _sources(repo_root / contract.MODEL_CODE_DIR)
    if not scripts or not model_code:
        raise FileNotFoundError("pipeline scripts or model code missing from the repository")
    for sub, files in (("scripts", scripts), ("model_code", model_code)):
        (out_dir / sub).mkdir(parents=True)
        for path in files:
            shutil.copyfile(path, out_dir / sub / path.name)
    (out_dir / SOURCEDIR_ARCHIVE).write_bytes(_deterministic_tar_gz(model_code))

    digest = hashlib.sha256()
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(out_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:HASH_LENGTH]
