"""The step helper (a forked child per step) gives what a plain subprocess gives, step by step.

Each case runs the same script once through the helper and once as ``subprocess.run``; exit
status, stdout and the last line of stderr must agree. The preload list here is ``json`` only,
so the helper starts in a fraction of a second."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from pipelines.model_build import local_run, step_process
from pipelines.model_build.step_process import (
    _HELPERS,
    Completed,
    StepProcesses,
    imports,
    third_party_modules,
)

PRELOAD = ("json",)  # standard library: cheap; what matters is the fork, not what is preloaded

SCRIPTS = {
    "ok": "import sys\nprint('out', sys.argv[1:])\nprint('err', file=sys.stderr)\n",
    "exit-3": "import sys\nprint('before')\nsys.exit(3)\n",
    "exit-message": "import sys\nsys.exit('one line for the log')\n",
    "exit-none": "raise SystemExit\n",
    "exit-300": "import sys\nsys.exit(300)\n",
    "raises": "def f():\n    raise ValueError('bad input: 12 rows')\nf()\n",
    "main-guard": "if __name__ == '__main__':\n    print('as __main__')\n",
    "cwd-env-argv": (
        "import os, sys\nprint(os.getcwd())\nprint(os.environ.get('STEP_VALUE'), "
        "os.environ.get('PARENT_ONLY'))\nprint(sys.argv[0].endswith('cwd-env-argv.py'), "
        "sys.argv[1:])\n"
    ),
    "stdin-empty": "import sys\nprint(repr(sys.stdin.read()))\n",
    "sibling-import": "import sibling\nprint(sibling.VALUE)\n",
    "atexit": "import atexit\natexit.register(lambda: print('at exit'))\nprint('body')\n",
    "killed": "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n",
}


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scripts")
    for name, body in SCRIPTS.items():
        (root / f"{name}.py").write_text(body)
    (root / "sibling.py").write_text("VALUE = 'shipped next to the script'\n")
    return root


def run_both(script: Path, args: list[str], cwd: Path) -> tuple[Completed, Completed]:
    env = {"PATH": os.environ.get("PATH", ""), "STEP_VALUE": "from the step"}
    command = [sys.executable, str(script), *args]
    forked = StepProcesses(sys.executable, PRELOAD, fork=True).run(command, cwd, env)
    plain = StepProcesses(sys.executable, PRELOAD, fork=False).run(command, cwd, env)
    return forked, plain


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_forked_step_ends_as_the_same_subprocess_would(
    name: str, scripts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARENT_ONLY", "must not leak into the step")
    forked, plain = run_both(scripts / f"{name}.py", ["--x", "1"], tmp_path)
    assert forked.returncode == plain.returncode, (forked, plain)
    assert forked.stdout == plain.stdout
    assert last_line(forked.stderr) == last_line(plain.stderr)


@pytest.mark.parametrize(
    ("name", "returncode", "stdout", "stderr_end"),
    [
        ("ok", 0, "out ['--x', '1']\n", "err"),
        ("exit-3", 3, "before\n", ""),
        ("exit-message", 1, "", "one line for the log"),
        ("exit-none", 0, "", ""),
        ("exit-300", 300 & 0xFF, "", ""),
        ("raises", 1, "", "ValueError: bad input: 12 rows"),
        ("main-guard", 0, "as __main__\n", ""),
        ("stdin-empty", 0, "''\n", ""),
        ("sibling-import", 0, "shipped next to the script\n", ""),
        ("atexit", 0, "body\nat exit\n", ""),
        ("killed", -signal.SIGTERM, "", ""),
    ],
)
def test_what_each_case_ends_with(
    name: str, returncode: int, stdout: str, stderr_end: str, scripts: Path, tmp_path: Path
) -> None:
    """The expected values themselves, so that both runners agreeing on a wrong answer fails."""
    forked, _ = run_both(scripts / f"{name}.py", ["--x", "1"], tmp_path)
    assert (forked.returncode, forked.stdout) == (returncode, stdout)
    assert last_line(forked.stderr) == stderr_end


def test_the_step_gets_its_directory_and_only_its_environment(
    scripts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARENT_ONLY", "must not leak into the step")
    forked, _ = run_both(scripts / "cwd-env-argv.py", ["a", "b"], tmp_path)
    assert forked.stdout.splitlines() == [str(tmp_path), "from the step None", "True ['a', 'b']"]


def test_a_module_on_the_launchers_path_only_is_not_importable_in_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in the container: the step sees its own directory and the installed packages, not
    the PYTHONPATH or the sys.path of the process that runs the pipeline."""
    launcher_only = tmp_path / "launcher"
    launcher_only.mkdir()
    (launcher_only / "launcher_only.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(launcher_only))
    monkeypatch.setenv("PYTHONPATH", str(launcher_only))
    script = tmp_path / "step.py"
    script.write_text("import launcher_only\n")
    preload = ("json", "ast")  # a helper started here, with PYTHONPATH set
    env = {"PATH": os.environ.get("PATH", "")}
    for fork in (True, False):
        done = StepProcesses(sys.executable, preload, fork=fork).run(
            [sys.executable, str(script)], tmp_path, env
        )
        assert done.returncode == 1, fork
        assert last_line(done.stderr) == "ModuleNotFoundError: No module named 'launcher_only'"
    assert _HELPERS[(sys.executable, preload)] is not None  # it was the helper that ran it


def test_a_step_changing_a_preloaded_module_does_not_reach_the_next(tmp_path: Path) -> None:
    change = tmp_path / "change.py"
    change.write_text("import json\njson.CHANGED = True\nprint(hasattr(json, 'CHANGED'))\n")
    look = tmp_path / "look.py"
    look.write_text("import json\nprint(hasattr(json, 'CHANGED'))\n")
    processes = StepProcesses(sys.executable, PRELOAD, fork=True)
    env = {"PATH": os.environ.get("PATH", "")}
    assert processes.run([sys.executable, str(change)], tmp_path, env).stdout == "True\n"
    assert processes.run([sys.executable, str(look)], tmp_path, env).stdout == "False\n"


def test_a_dead_helper_is_replaced_by_plain_subprocesses(scripts: Path, tmp_path: Path) -> None:
    preload = ("json", "textwrap")  # a helper of this test's own
    processes = StepProcesses(sys.executable, preload, fork=True)
    env = {"PATH": os.environ.get("PATH", "")}
    command = [sys.executable, str(scripts / "exit-3.py")]
    assert processes.run(command, tmp_path, env).returncode == 3
    helper = _HELPERS[(sys.executable, preload)]
    assert helper is not None
    helper.process.kill()
    helper.process.wait()
    again = processes.run(command, tmp_path, env)  # the helper is gone: a subprocess runs it
    assert (again.returncode, again.stdout) == (3, "before\n")
    assert _HELPERS[(sys.executable, preload)] is None


def test_a_command_for_another_interpreter_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a step runs with"):
        StepProcesses(sys.executable, PRELOAD).run(["/usr/bin/python3", "x.py"], tmp_path, {})


def test_imports_finds_nested_and_from_imports_but_not_relative_ones() -> None:
    source = textwrap.dedent(
        """
        import os, numpy as np
        from pandas import DataFrame
        from . import sibling
        from .pkg import thing

        def late():
            from sklearn.metrics import roc_auc_score
            import xgboost
        """
    )
    assert imports(source) == {"os", "numpy", "pandas", "sklearn.metrics", "xgboost"}


def test_third_party_modules_leave_out_the_standard_library_and_shipped_modules(
    tmp_path: Path,
) -> None:
    (tmp_path / "train.py").write_text("import json\nimport model_format\nimport xgboost\n")
    (tmp_path / "model_format.py").write_text(
        "from __future__ import annotations\nimport numpy as np\n"
    )
    files = [tmp_path / "train.py", tmp_path / "model_format.py"]
    assert third_party_modules(files) == ("numpy", "xgboost")


def test_the_pipeline_preloads_what_its_scripts_import() -> None:
    preload = local_run.step_imports()
    for name in ("numpy", "pandas", "sklearn.model_selection", "sklearn.metrics", "xgboost"):
        assert name in preload
    assert not [n for n in preload if n.partition(".")[0] in ("pipelines", "model_format")]


def test_off_linux_steps_are_plain_subprocesses(
    scripts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(step_process, "FORK_BY_DEFAULT", False)
    preload = ("json", "string")  # no helper exists for these yet: none may be started
    processes = StepProcesses(sys.executable, preload)
    assert processes.fork is False
    done = processes.run([sys.executable, str(scripts / "exit-3.py")], tmp_path, {})
    assert (done.returncode, done.stdout) == (3, "before\n")
    assert (sys.executable, preload) not in _HELPERS
