"""Content-addressed cache of rendered pipeline definitions: the SageMaker SDK only when needed.

Rendering a definition with the SDK costs seconds (importing the SDK alone takes about 3 s), and
every synth, every test worker and every stage paid it again for the same inputs. The cache
keeps each rendered definition on disk under a SHA-256 key of everything that shapes it:

* every field of :class:`~pipelines.model_build.definition.PipelineInputs` with its type (the
  code bundle's content hash is part of ``code_uri``). CDK tokens (``${Token[TOKEN.123]}``) are
  numbered by creation order in the jsii process, so adding any construct, or synthesizing
  another app first in the same process, renumbers them: the key sees each distinct token as
  a numbered placeholder (``${Token[MLOPS.CACHE.0]}``...) in order of first use, the stored
  text holds the placeholders, and a hit puts the caller's tokens back. The builder never
  inspects these strings (it renders with stand-ins), so renaming a token renames it in the
  text and nothing else; an entry is stored only when that renaming is exactly reversible;
* the bytes of every ``*.py`` file of the ``pipelines/model_build`` package, subfolders included
  (``definition.py``, ``contract.py``, the step scripts, the model code...);
* the installed versions of the SageMaker SDK distributions, boto3 and botocore, the Python
  version, and the ``SAGEMAKER*`` environment variables;
* :data:`CACHE_FORMAT`.

So an entry is never stale: change any of these and the key changes. A hit reads one small
file and does not import the SDK; a miss renders with the SDK (:func:`definition.build_definition`,
unchanged) and stores the exact text. The directory is safe to delete at any time (``make clean``).
Entries are written atomically (temporary file + ``os.replace``) and checked on read (key and
SHA-256 of the text); a damaged entry is a miss. Processes that miss the same key wait for each
other (an ``flock`` per key), so parallel test workers render each definition once.

An entry is not stored when a source file was modified after this process started: the
imported modules might then differ from the files the key was computed from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from pipelines.model_build.definition import PipelineInputs

#: Bump when the key derivation or the entry layout changes.
CACHE_FORMAT = 1
#: cdk.json / ``-c`` context key: a directory, or ``false`` / ``"off"`` for no cache.
CONTEXT_KEY = "definition-cache"
SOURCE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = SOURCE_ROOT.parents[1]
DEFAULT_DIRECTORY = REPO_ROOT / ".work" / "cache" / "pipeline-definitions"
#: The distributions whose code renders the definition (the SDK is split into several).
DISTRIBUTIONS = (
    "sagemaker",
    "sagemaker-core",
    "sagemaker-mlops",
    "sagemaker-serve",
    "sagemaker-train",
    "boto3",
    "botocore",
)
_OFF = ("off", "false", "no", "none", "0")
_ON = ("on", "true", "yes", "1")
#: Sources modified this close to (or after) the process start are not trusted for storing.
_MTIME_SLACK_S = 2.0


def _process_start() -> float:
    """When this process started (epoch seconds); Linux ``/proc``, else this module's import."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration, AttributeError):
        return time.time()


PROCESS_START = min(_process_start(), time.time())


def resolve_directory(value: Any, base: Path = REPO_ROOT) -> Path | None:
    """The cache directory for a context value: absent or on -> the default, off -> None.

    Raises ``ValueError`` (one line) for anything but a boolean or a non-empty string."""
    if value is None or value is True:
        return DEFAULT_DIRECTORY
    if value is False:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a directory, or false/off to render every definition")
    if value.strip().lower() in _OFF:
        return None
    if value.strip().lower() in _ON:
        return DEFAULT_DIRECTORY
    return (base / Path(value.strip()).expanduser()).resolve()


def source_files(root: Path = SOURCE_ROOT) -> list[Path]:
    """The files whose bytes are part of the key (sorted)."""
    return sorted(p for p in root.rglob("*.py") if p.is_file() and "__pycache__" not in p.parts)


def source_digest(root: Path = SOURCE_ROOT) -> str:
    digest = hashlib.sha256()
    for path in source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def installed_versions(names: tuple[str, ...] = DISTRIBUTIONS) -> dict[str, str | None]:
    """Distribution -> installed version (None when absent); read without importing them."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment_digest() -> dict[str, str]:
    return {k: v for k, v in sorted(os.environ.items()) if k.upper().startswith("SAGEMAKER")}


def inputs_document(inputs: PipelineInputs) -> dict[str, list[Any]]:
    """Every field as ``[type name, value]``: ``1`` and ``True`` are different keys."""
    return {
        field.name: [type(value).__name__, list(value) if isinstance(value, tuple) else value]
        for field in dataclasses.fields(inputs)
        for value in (getattr(inputs, field.name),)
    }


def definition_key(
    inputs: PipelineInputs,
    *,
    sources: str,
    versions: Mapping[str, str | None],
    python: str = sys.version,
    environment: Mapping[str, str] | None = None,
) -> str:
    document = {
        "format": CACHE_FORMAT,
        "inputs": inputs_document(inputs),
        "sources": sources,
        "versions": dict(sorted(versions.items())),
        "python": python,
        "environment": dict(environment if environment is not None else environment_digest()),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


#: A CDK string token (aws-cdk-lib's ``STRING_TOKEN_REGEX``: ``${Token[<key chars>]}``).
TOKEN = re.compile(r"\$\{Token\[[a-zA-Z0-9:._-]+\]\}")
_PLACEHOLDER = "${{Token[MLOPS.CACHE.{}]}}"
_PLACEHOLDER_MARK = "MLOPS.CACHE."


def canonical_inputs(inputs: PipelineInputs) -> tuple[PipelineInputs, list[str]]:
    """``inputs`` with each distinct CDK token replaced by a numbered placeholder (order of
    first use over the fields), and the tokens in placeholder order."""
    tokens: list[str] = []

    def canonical(value: str) -> str:
        def placeholder(match: re.Match[str]) -> str:
            if match.group(0) not in tokens:
                tokens.append(match.group(0))
            return _PLACEHOLDER.format(tokens.index(match.group(0)))

        return TOKEN.sub(placeholder, value)

    changes: dict[str, Any] = {}
    for field in dataclasses.fields(inputs):
        value = getattr(inputs, field.name)
        if isinstance(value, str):
            changes[field.name] = canonical(value)
        elif isinstance(value, tuple):
            changes[field.name] = tuple(canonical(v) if isinstance(v, str) else v for v in value)
    return dataclasses.replace(inputs, **changes), tokens


def expand(canonical_text: str, tokens: list[str]) -> str:
    """The stored text with the caller's tokens in place of the placeholders."""
    for index, token in enumerate(tokens):
        canonical_text = canonical_text.replace(_PLACEHOLDER.format(index), token)
    return canonical_text


def abstract(text: str, tokens: list[str]) -> str | None:
    """``text`` with the caller's tokens as placeholders; None unless exactly reversible (a
    token left over, or a placeholder-like string already in the text)."""
    if _PLACEHOLDER_MARK in text:
        return None
    canonical_text = text
    for index, token in enumerate(tokens):
        canonical_text = canonical_text.replace(token, _PLACEHOLDER.format(index))
    leftover = [t for t in TOKEN.findall(canonical_text) if _PLACEHOLDER_MARK not in t]
    if leftover or expand(canonical_text, tokens) != text:
        return None
    return canonical_text


def _build_with_sdk(inputs: PipelineInputs) -> str:
    from pipelines.model_build.definition import build_definition

    return build_definition(inputs)


@contextlib.contextmanager
def _key_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (POSIX ``flock``; elsewhere no lock: writes stay
    atomic, concurrent misses just render twice)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class DefinitionCache:
    """Rendered definitions by key: in memory for the process, on disk in ``directory``.

    ``directory=None`` disables the cache: every call renders with the SDK."""

    def __init__(
        self,
        directory: Path | None,
        *,
        source_root: Path = SOURCE_ROOT,
        versions: Mapping[str, str | None] | None = None,
        build: Callable[[PipelineInputs], str] = _build_with_sdk,
        process_start: float | None = None,
    ) -> None:
        self.directory = directory
        self.source_root = source_root
        self._versions = dict(versions) if versions is not None else None
        self._build = build
        self._process_start = PROCESS_START if process_start is None else process_start
        self._sources: str | None = None
        self._memory: dict[str, str] = {}
        #: Counters since creation: "memory", "disk" (hits), "rendered", "stored".
        self.stats = {"memory": 0, "disk": 0, "rendered": 0, "stored": 0}

    # ---- key --------------------------------------------------------------------------------

    def key(self, inputs: PipelineInputs) -> str:
        if self._sources is None:
            self._sources = source_digest(self.source_root)
        if self._versions is None:
            self._versions = installed_versions()
        return definition_key(inputs, sources=self._sources, versions=self._versions)

    def entry_path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{key}.json"

    # ---- lookup -----------------------------------------------------------------------------

    def definition(self, inputs: PipelineInputs) -> str:
        """The definition for ``inputs``: from memory, disk, or rendered (and stored)."""
        if self.directory is None:
            self.stats["rendered"] += 1
            return self._build(inputs)
        canonical, tokens = canonical_inputs(inputs)
        key = self.key(canonical)
        if key in self._memory:
            self.stats["memory"] += 1
            return expand(self._memory[key], tokens)
        stored = self.read(key)
        if stored is None:
            with contextlib.ExitStack() as held:
                try:
                    self.directory.mkdir(parents=True, exist_ok=True)
                    held.enter_context(_key_lock(self.directory / f"{key}.lock"))
                except OSError:  # a directory that cannot be written: render, store nothing
                    return self._render(key, inputs, tokens, store=False)
                stored = self.read(key)  # another process may have rendered it meanwhile
                if stored is None:
                    return self._render(key, inputs, tokens, store=True)
        self.stats["disk"] += 1
        self._memory[key] = stored
        return expand(stored, tokens)

    def _render(self, key: str, inputs: PipelineInputs, tokens: list[str], *, store: bool) -> str:
        """Render with the SDK (the caller's own inputs: the text returned is the SDK's) and
        store it when its tokens can be abstracted exactly and the sources are unchanged."""
        self.stats["rendered"] += 1
        text = self._build(inputs)
        canonical_text = abstract(text, tokens)
        if canonical_text is not None:
            self._memory[key] = canonical_text
            if store and self._sources_unchanged_since_start():
                with contextlib.suppress(OSError):  # e.g. a full disk: the next synth renders
                    self._write(key, canonical_text)
                    self.stats["stored"] += 1
        return text

    def read(self, key: str) -> str | None:
        """The stored text, or None when absent or damaged (wrong key or checksum)."""
        try:
            entry = json.loads(self.entry_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key:
            return None
        text = entry.get("definition")
        if not isinstance(text, str) or _sha256(text) != entry.get("sha256"):
            return None
        return text

    def _write(self, key: str, text: str) -> None:
        assert self.directory is not None
        entry = {"format": CACHE_FORMAT, "key": key, "sha256": _sha256(text), "definition": text}
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entry, handle)
            os.replace(tmp, self.entry_path(key))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _sources_unchanged_since_start(self) -> bool:
        """False when a source file changed after this process started: the modules it
        imported may not be the bytes the key was computed from."""
        limit = self._process_start - _MTIME_SLACK_S
        return all(path.stat().st_mtime < limit for path in source_files(self.source_root))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_caches: dict[Path | None, DefinitionCache] = {}


def cache_for(directory: Path | None) -> DefinitionCache:
    """One cache per directory per process (its in-memory entries are shared by every stage)."""
    if directory not in _caches:
        _caches[directory] = DefinitionCache(directory)
    return _caches[directory]
