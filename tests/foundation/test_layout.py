"""The layout's floors: each module may import only from its own floor or the floors below.

    ground        infra/{config,naming,compliance,service_roles,log_retention,state_machines,
                  lambda_runtime,cfn_hygiene,workspace}
    capabilities  data_lake pipelines deployment lambdas serving monitoring retraining ingestion
                  sweeper audit costing studio (one folder per capability)
    stacks        stacks/ (compose and wire the capabilities of a stage)
    app           infra/stages.py, infra/app_builder.py, app.py, promotion/ (the delivery pipeline
                  composes whole stages: it sits with the app assembly, not with a capability)
    cli           cli/ (the operator CLI), and the tools still under infra/: ci_settings (the
                  branch workflows' settings), bench (synth/test timing)

Every import is checked, at module level or inside a function (a lazy import is still a
dependency), parsed with ``ast`` (nothing is imported). Tests may import anything. A module or
top-level folder without a floor fails the test: a new one must be placed in FLOORS.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GROUND, CAPABILITIES, STACKS, APP, CLI = range(5)
FLOOR_NAMES = ("ground", "capabilities", "stacks", "app", "cli")

#: Dotted module prefix -> floor; the longest matching prefix decides.
FLOORS: dict[str, int] = {
    "infra": GROUND,  # the package itself (empty __init__)
    "infra.config": GROUND,
    "infra.naming": GROUND,
    "infra.compliance": GROUND,
    "infra.service_roles": GROUND,
    "infra.log_retention": GROUND,
    "infra.state_machines": GROUND,
    "infra.lambda_runtime": GROUND,
    "infra.cfn_hygiene": GROUND,
    "infra.workspace": GROUND,
    "data_lake": CAPABILITIES,
    "pipelines": CAPABILITIES,
    "deployment": CAPABILITIES,
    "lambdas": CAPABILITIES,
    "serving": CAPABILITIES,
    "monitoring": CAPABILITIES,
    "retraining": CAPABILITIES,
    "ingestion": CAPABILITIES,
    "sweeper": CAPABILITIES,
    "audit": CAPABILITIES,
    "costing": CAPABILITIES,
    "studio": CAPABILITIES,
    "feature_store": CAPABILITIES,
    "stacks": STACKS,
    "infra.stages": APP,
    "infra.app_builder": APP,
    "app": APP,
    "promotion": APP,
    "cli": CLI,
    "infra.ci_settings": CLI,
    "infra.bench": CLI,
}
#: Not application code: never scanned, never importable from application code.
SKIPPED_DIRS = frozenset(
    {"tests", "node_modules", "cdk.out", "cdk.out.new", ".venv", ".venv-tools", ".work", ".git"}
)


def floor_of(module: str) -> int | None:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in FLOORS:
            return FLOORS[prefix]
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def application_modules() -> dict[str, Path]:
    modules = {}
    for path in REPO.rglob("*.py"):
        relative = path.relative_to(REPO).parts
        if relative[0] in SKIPPED_DIRS or relative[0].startswith(".") or "__pycache__" in relative:
            continue
        modules[module_name(path)] = path
    return modules


def local_top_levels(modules: dict[str, Path]) -> frozenset[str]:
    return frozenset(name.split(".")[0] for name in modules) | {"tests"}


def imported_modules(path: Path, module: str, known: frozenset[str]) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in the file, once per line and module. In
    ``from a import b``, ``a.b`` when that is a module of ``known``, else ``a`` (b is one of
    its attributes); relative imports are resolved against ``module``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((node.lineno, candidate if candidate in known else base))
    return sorted(set(found))


MODULES = application_modules()
LOCAL = local_top_levels(MODULES)


def test_every_module_has_a_floor() -> None:
    unplaced = sorted(name for name in MODULES if floor_of(name) is None)
    assert not unplaced, (
        f"place these modules in FLOORS (tests/foundation/test_layout.py): {unplaced}"
    )


def upward_imports(path: Path, module: str) -> list[str]:
    """The imports of ``module`` (at ``path``) from a floor above its own."""
    own = floor_of(module)
    assert own is not None, module
    upward = []
    for line, imported in imported_modules(path, module, frozenset(MODULES)):
        top = imported.split(".")[0]
        if top not in LOCAL:
            continue  # standard library or a dependency
        if top == "tests":
            upward.append(f"line {line}: {imported} (tests are not application code)")
            continue
        floor = floor_of(imported)
        if floor is not None and floor > own:
            upward.append(f"line {line}: {imported} ({FLOOR_NAMES[floor]})")
    return upward


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_from_its_floor_or_below(module: str) -> None:
    upward = upward_imports(MODULES[module], module)
    floor = FLOOR_NAMES[floor_of(module) or 0]
    assert not upward, f"{module} ({floor}) imports from a floor above: {upward}"


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("deployment.fake", "from stacks.stateful_stack import StatefulStack\n", "(stacks)"),
        ("infra.naming", "def f():\n    from cli.main import app\n", "(cli)"),
        ("stacks.fake", "import infra.app_builder\n", "(app)"),
        ("data_lake.fake", "from promotion import commands\n", "(app)"),
        ("infra.config", "from tests.conftest import x\n", "(tests are not application code)"),
    ],
)
def test_an_upward_import_is_reported(
    tmp_path: Path, module: str, source: str, expected: str
) -> None:
    path = tmp_path / "m.py"
    path.write_text(source)
    (found,) = upward_imports(path, module)
    assert found.endswith(expected), found


def test_imports_from_below_are_allowed(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "from infra.config import load_config\nfrom deployment import promote\n"
        "import stacks.stateful_stack\nfrom infra.app_builder import synthesize\n"
    )
    assert upward_imports(path, "cli.fake") == []
    assert upward_imports(path, "stacks.fake") == ["line 4: infra.app_builder (app)"]


def test_the_floor_map_matches_the_issue_order() -> None:
    """Ground < capabilities < stacks < app assembly < cli, as README's folder table says."""
    assert floor_of("infra.config") < floor_of("deployment.workflow") < floor_of("stacks.x")
    assert floor_of("stacks.x") < floor_of("infra.app_builder") < floor_of("cli.main")
    assert floor_of("promotion.pipeline_stack") == floor_of("infra.stages") == APP


def test_the_checker_sees_lazy_relative_and_from_imports(tmp_path: Path) -> None:
    """The parser itself: a function-level import, ``from . import x``, ``from pkg import mod``."""
    source = tmp_path / "__init__.py"
    source.write_text(
        "from infra.config import load_config\n"
        "from . import sibling\n"
        "def f():\n    import cli.main\n    from stacks import stateful_stack\n"
    )
    known = frozenset({"deployment.sub.sibling", "stacks.stateful_stack"})
    found = {name for _, name in imported_modules(source, "deployment.sub", known)}
    assert found == {"infra.config", "deployment.sub.sibling", "cli.main", "stacks.stateful_stack"}
