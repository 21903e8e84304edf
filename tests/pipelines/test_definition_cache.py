"""The pipeline-definition cache: keyed on everything that shapes a definition (inputs, sources,
SDK versions, Python), never stale, never damaged, shared between processes, and a hit is the
SDK's rendering byte for byte without importing the SDK."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipelines.model_build import definition_cache as dc
from pipelines.model_build.definition import PipelineInputs, build_definition

REPO_ROOT = Path(__file__).resolve().parents[2]

# What the construct passes: CDK tokens for the role, buckets and key (numbered by the jsii
# process in creation order), concrete values for the rest.
ROLE, BUCKET, RAW, KEY = (f"${{Token[TOKEN.{n}]}}" for n in (41, 42, 43, 44))
INPUTS = PipelineInputs(
    pipeline_name="mlops-dev-model-build",
    region="us-east-1",
    role_arn=ROLE,
    artifacts_bucket=BUCKET,
    code_uri=f"s3://{BUCKET}/code/model-build/0123456789abcdef",
    input_data_uri=f"s3://{RAW}/datasets/breast_cancer/",
    kms_key_arn=KEY,
    model_package_group_name="mlops-dev-models",
    processing_instance_type="ml.m5.large",
    processing_instance_count=1,
    training_instance_type="ml.m5.large",
    training_instance_count=1,
    spot_training=True,
    hyperparameter_tuning=False,
    approval_threshold=0.9,
)
VERSIONS: dict[str, str | None] = {name: "1.0.0" for name in dc.DISTRIBUTIONS}


def renumbered(inputs: PipelineInputs, offset: int) -> PipelineInputs:
    """The same inputs with every token renumbered (what adding a construct earlier does)."""

    def shift(value: str) -> str:
        return re.sub(r"TOKEN\.(\d+)", lambda m: f"TOKEN.{int(m.group(1)) + offset}", value)

    changes = {
        f.name: shift(getattr(inputs, f.name))
        for f in dataclasses.fields(inputs)
        if isinstance(getattr(inputs, f.name), str)
    }
    return dataclasses.replace(inputs, **changes)


def key_of(inputs: PipelineInputs, **overrides: Any) -> str:
    canonical, _ = dc.canonical_inputs(inputs)
    arguments: dict[str, Any] = {"sources": "s", "versions": VERSIONS, "python": "3.11.7"}
    arguments["environment"] = {}
    arguments.update(overrides)
    return dc.definition_key(canonical, **arguments)


def changed(value: Any) -> Any:
    if value is None:  # serving_image_uri: prebuilt -> custom
        return "111111111111.dkr.ecr.us-east-1.amazonaws.com/mlops-dev-serving:0a1b2c"
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.01
    if isinstance(value, tuple):
        return (*value, "subnet-0aaa")
    assert isinstance(value, str)
    return value + "x"


# ---- the key ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(PipelineInputs)])
def test_every_input_field_is_part_of_the_key(field: str) -> None:
    other = dataclasses.replace(INPUTS, **{field: changed(getattr(INPUTS, field))})
    assert key_of(other) != key_of(INPUTS)


def test_a_value_of_another_type_is_another_key() -> None:
    as_int = dataclasses.replace(INPUTS, approval_threshold=1)
    as_float = dataclasses.replace(INPUTS, approval_threshold=1.0)
    assert key_of(as_int) != key_of(as_float)


def test_token_numbers_are_not_part_of_the_key_but_which_token_goes_where_is() -> None:
    assert key_of(renumbered(INPUTS, 1000)) == key_of(INPUTS)
    # The code bucket is the artifacts bucket; a different bucket token is another definition.
    other_bucket = dataclasses.replace(INPUTS, code_uri=f"s3://{RAW}/code/model-build/0123")
    same_bucket = dataclasses.replace(INPUTS, code_uri=f"s3://{BUCKET}/code/model-build/0123")
    assert key_of(other_bucket) != key_of(same_bucket)
    # Swapping two tokens only renames them (the placeholders follow first use)...
    swapped = dataclasses.replace(INPUTS, role_arn=KEY, kms_key_arn=ROLE)
    assert key_of(swapped) == key_of(INPUTS)
    # ...while one token used in two places is another definition than two tokens.
    shared = dataclasses.replace(INPUTS, kms_key_arn=ROLE)
    assert key_of(shared) != key_of(INPUTS)


@pytest.mark.parametrize(
    "override",
    [
        {"versions": {**VERSIONS, "sagemaker": "3.28.0"}},
        {"versions": {**VERSIONS, "sagemaker-core": "2.28.0"}},
        {"versions": {**VERSIONS, "botocore": "1.44.9"}},
        {"versions": {**VERSIONS, "sagemaker-mlops": None}},
        {"python": "3.12.1"},
        {"sources": "t"},
        {"environment": {"SAGEMAKER_USER_CONFIG_OVERRIDE": "/tmp/config.yaml"}},
    ],
    ids=["sdk", "sdk-core", "botocore", "sdk-part-missing", "python", "sources", "environment"],
)
def test_sdk_versions_python_sources_and_sdk_environment_are_part_of_the_key(
    override: dict[str, Any],
) -> None:
    assert key_of(INPUTS, **override) != key_of(INPUTS)


def test_installed_versions_are_read_from_the_installed_distributions() -> None:
    pins = dict(
        line.split("==", 1)
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    versions = dc.installed_versions()
    assert versions["sagemaker"] == pins["sagemaker"]
    assert versions["boto3"] == pins["boto3"]
    assert all(versions[name] for name in dc.DISTRIBUTIONS)
    assert dc.installed_versions(("no-such-distribution-mlops",)) == {
        "no-such-distribution-mlops": None
    }


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    """A copy of the model-build package's files (sources, scripts, model code, dataset)."""
    root = tmp_path / "model_build"
    shutil.copytree(dc.SOURCE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize(
    "path",
    [
        "scripts/preprocess.py",
        "scripts/evaluate.py",
        "model_code/train.py",
        "contract.py",
        "definition.py",
        "packaging.py",
    ],
)
def test_one_changed_byte_in_any_source_or_script_is_another_key(
    source_copy: Path, path: str
) -> None:
    before = dc.source_digest(source_copy)
    target = source_copy / path
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    assert dc.source_digest(source_copy) != before


def test_an_added_or_renamed_module_is_another_key(source_copy: Path) -> None:
    before = dc.source_digest(source_copy)
    (source_copy / "scripts" / "extra.py").write_text("")
    added = dc.source_digest(source_copy)
    assert added != before
    (source_copy / "scripts" / "extra.py").rename(source_copy / "scripts" / "extra2.py")
    assert dc.source_digest(source_copy) not in (before, added)


def test_the_key_covers_every_python_file_of_the_package_and_no_data() -> None:
    files = {p.relative_to(dc.SOURCE_ROOT).as_posix() for p in dc.source_files()}
    assert {"definition.py", "contract.py", "scripts/preprocess.py", "model_code/train.py"} <= files
    assert all(name.endswith(".py") for name in files)


# ---- the cache, with a renderer that counts (the SDK's own rendering: further below) ---------


class CountingRenderer:
    """A deterministic stand-in renderer (inputs as JSON), counting its calls."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, inputs: PipelineInputs) -> str:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return json.dumps(dataclasses.asdict(inputs), sort_keys=True)


def make_cache(
    directory: Path | None, renderer: Callable[[PipelineInputs], str]
) -> dc.DefinitionCache:
    # Sources "unchanged since start": a start time after every file's modification.
    return dc.DefinitionCache(
        directory, versions=VERSIONS, build=renderer, process_start=time.time() + 60
    )


def test_a_miss_renders_and_stores_and_a_new_process_reads_it(tmp_path: Path) -> None:
    renderer = CountingRenderer()
    first = make_cache(tmp_path, renderer)
    text = first.definition(INPUTS)
    assert (renderer.calls, first.stats["stored"]) == (1, 1)
    assert first.definition(INPUTS) == text and first.stats["memory"] == 1
    second = make_cache(tmp_path, renderer)  # a new process: nothing in memory
    assert second.definition(INPUTS) == text
    assert (renderer.calls, second.stats["disk"]) == (1, 1)
    # Renumbered tokens hit the same entry and get their own tokens back.
    shifted = renumbered(INPUTS, 7)
    assert second.definition(shifted) == renderer(shifted)
    assert renderer.calls == 2  # (the call just above, for the comparison)


def test_a_changed_input_is_a_miss_never_the_old_entry(tmp_path: Path) -> None:
    renderer = CountingRenderer()
    make_cache(tmp_path, renderer).definition(INPUTS)
    other = dataclasses.replace(INPUTS, approval_threshold=0.95)
    cache = make_cache(tmp_path, renderer)
    assert cache.definition(other) == renderer(other)
    assert cache.stats["rendered"] == 1 and cache.stats["disk"] == 0


def test_changed_sources_or_sdk_version_are_a_miss(source_copy: Path, tmp_path: Path) -> None:
    renderer = CountingRenderer()

    def cache(versions: dict[str, str | None]) -> dc.DefinitionCache:
        return dc.DefinitionCache(
            tmp_path / "cache",
            source_root=source_copy,
            versions=versions,
            build=renderer,
            process_start=time.time() + 60,
        )

    cache(VERSIONS).definition(INPUTS)
    assert cache(VERSIONS).definition(INPUTS) and renderer.calls == 1
    upgraded = cache({**VERSIONS, "sagemaker": "3.28.0"})
    upgraded.definition(INPUTS)
    assert upgraded.stats["rendered"] == 1
    contract = source_copy / "contract.py"
    contract.write_text(contract.read_text() + "\n# changed\n")
    edited = cache(VERSIONS)
    edited.definition(INPUTS)
    assert edited.stats["rendered"] == 1 and renderer.calls == 3


def test_nothing_is_stored_when_sources_changed_after_the_process_started(
    source_copy: Path, tmp_path: Path
) -> None:
    """The imported modules may then not be the files the key was computed from."""
    # copytree keeps the files' times: touch one, edited after this "process" started.
    (source_copy / "scripts" / "preprocess.py").touch()
    renderer = CountingRenderer()
    cache = dc.DefinitionCache(
        tmp_path / "cache",
        source_root=source_copy,
        versions=VERSIONS,
        build=renderer,
        process_start=time.time() - 3600,
    )
    assert cache.definition(INPUTS) == renderer(INPUTS)
    assert cache.stats == {"memory": 0, "disk": 0, "rendered": 1, "stored": 0}
    assert not list((tmp_path / "cache").glob("*.json"))


@pytest.mark.parametrize("damage", ["truncated", "edited text", "other key", "not json"])
def test_a_damaged_entry_is_a_miss_and_is_replaced(tmp_path: Path, damage: str) -> None:
    renderer = CountingRenderer()
    cache = make_cache(tmp_path, renderer)
    text = cache.definition(INPUTS)
    (entry,) = tmp_path.glob("*.json")
    stored = json.loads(entry.read_text())
    if damage == "truncated":
        entry.write_text(entry.read_text()[:100])
    elif damage == "edited text":
        entry.write_text(json.dumps({**stored, "definition": stored["definition"] + " "}))
    elif damage == "other key":
        entry.write_text(json.dumps({**stored, "key": "0" * 64}))
    else:
        entry.write_bytes(b"\x00\xff")
    again = make_cache(tmp_path, renderer)
    assert again.definition(INPUTS) == text
    assert again.stats["rendered"] == 1 and again.stats["stored"] == 1
    assert make_cache(tmp_path, renderer).read(again.key(dc.canonical_inputs(INPUTS)[0]))


def test_no_temporary_file_is_left_and_the_entry_is_the_exact_text(tmp_path: Path) -> None:
    cache = make_cache(tmp_path, CountingRenderer())
    text = cache.definition(INPUTS)
    files = sorted(p.name for p in tmp_path.iterdir())
    (entry_name,) = [name for name in files if name.endswith(".json")]
    assert [name for name in files if name.endswith(".tmp")] == []
    entry = json.loads((tmp_path / entry_name).read_text())
    canonical = dc.abstract(text, [ROLE, BUCKET, RAW, KEY])
    assert entry["definition"] == canonical and "TOKEN.4" not in entry["definition"]
    assert entry["sha256"] == hashlib.sha256(entry["definition"].encode()).hexdigest()


def test_processes_missing_the_same_entry_render_it_once(tmp_path: Path) -> None:
    renderer = CountingRenderer(delay=0.5)  # long enough for both to miss before either stores
    caches = [make_cache(tmp_path, renderer) for _ in range(2)]
    barrier = threading.Barrier(2)
    texts: list[str] = []

    def run(cache: dc.DefinitionCache) -> None:
        barrier.wait()
        texts.append(cache.definition(INPUTS))

    threads = [threading.Thread(target=run, args=(cache,)) for cache in caches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(texts) == 2 and texts[0] == texts[1]
    assert renderer.calls == 1
    assert sorted(c.stats["rendered"] + c.stats["disk"] for c in caches) == [1, 1]


def test_a_text_whose_tokens_cannot_be_abstracted_exactly_is_not_stored(tmp_path: Path) -> None:
    def mangling(inputs: PipelineInputs) -> str:  # a token altered on the way: not reversible
        return json.dumps({"role": inputs.role_arn.replace("TOKEN", "T0KEN")})

    cache = make_cache(tmp_path, mangling)
    assert "T0KEN" in cache.definition(INPUTS)
    assert cache.stats["stored"] == 0 and not list(tmp_path.glob("*.json"))
    assert dc.abstract("already has ${Token[MLOPS.CACHE.0]}", []) is None


def test_a_directory_that_cannot_be_written_renders_and_stores_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    renderer = CountingRenderer()
    cache = make_cache(blocker / "cache", renderer)  # mkdir under a file fails
    assert cache.definition(INPUTS) == renderer(INPUTS)
    assert cache.stats["rendered"] == 1 and cache.stats["stored"] == 0


def test_disabled_cache_renders_every_time(tmp_path: Path) -> None:
    renderer = CountingRenderer()
    cache = make_cache(None, renderer)
    cache.definition(INPUTS)
    cache.definition(INPUTS)
    assert renderer.calls == 2 and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, dc.DEFAULT_DIRECTORY),
        (True, dc.DEFAULT_DIRECTORY),
        ("on", dc.DEFAULT_DIRECTORY),
        (False, None),
        ("off", None),
        ("false", None),
        ("cache/defs", REPO_ROOT / "cache" / "defs"),
        ("/tmp/defs", Path("/tmp/defs")),
    ],
)
def test_context_value_resolution(value: Any, expected: Path | None) -> None:
    assert dc.resolve_directory(value) == expected


@pytest.mark.parametrize("value", ["", "  ", 3, ["a"]])
def test_bad_context_values_are_rejected(value: Any) -> None:
    with pytest.raises(ValueError, match="expected a directory"):
        dc.resolve_directory(value)


def test_a_bad_context_value_is_a_one_line_config_error() -> None:
    from infra.app_builder import definition_cache_directory
    from infra.config import ConfigError

    with pytest.raises(ConfigError, match=r"definition-cache = 3: expected a directory"):
        definition_cache_directory(3)


# ---- with the SageMaker SDK ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdk_cached(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """(cache directory, the SDK's rendering without cache, the cached path's first result)."""
    directory = tmp_path_factory.mktemp("definitions")
    uncached = dc.DefinitionCache(None).definition(INPUTS)
    cache = dc.DefinitionCache(directory, process_start=time.time() + 60)
    cold = cache.definition(INPUTS)
    assert cache.stats["rendered"] == 1 and cache.stats["stored"] == 1
    return directory, uncached, cold


def test_cached_definitions_are_the_sdk_rendering_byte_for_byte(
    sdk_cached: tuple[Path, str, str],
) -> None:
    directory, uncached, cold = sdk_cached
    assert cold == uncached == build_definition(INPUTS)
    warm = dc.DefinitionCache(directory)
    assert warm.definition(INPUTS) == uncached and warm.stats["disk"] == 1
    # Other token numbers (another construct order): the SDK renders exactly what a hit returns.
    shifted = renumbered(INPUTS, 500)
    assert warm.definition(shifted) == build_definition(shifted)
    assert warm.stats["rendered"] == 0


def test_a_hit_does_not_import_the_sdk(sdk_cached: tuple[Path, str, str]) -> None:
    directory, uncached, _ = sdk_cached
    script = f"""
import dataclasses, json, sys
from pipelines.model_build import definition_cache as dc
from pipelines.model_build.definition import PipelineInputs
fields = json.loads({json.dumps(json.dumps(dataclasses.asdict(INPUTS)))})
fields["subnet_ids"], fields["security_group_ids"] = (), ()
cache = dc.DefinitionCache(dc.Path({str(directory)!r}))
text = cache.definition(PipelineInputs(**fields))
loaded = sorted(m for m in sys.modules if m == "sagemaker" or m.startswith(("sagemaker.", "boto")))
print(json.dumps({{"text": text, "stats": cache.stats, "loaded": loaded}}))
"""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["stats"]["disk"] == 1 and report["stats"]["rendered"] == 0
    assert report["loaded"] == []
    assert report["text"] == uncached
