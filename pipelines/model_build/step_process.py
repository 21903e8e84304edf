"""Run a pipeline step's script in its own process, without paying its imports every time.

A step is ``python <script> <args...>`` in a working directory with its own environment, stdout
and stderr captured, and an exit status, exactly what ``subprocess.run`` gives. Most of a local
step's time was the interpreter importing pandas, scikit-learn and XGBoost again (about 1.4 of
the 1.5 seconds of Preprocess, Train and Evaluate each). So a helper process (the "zygote")
imports, once, the third-party modules the step scripts import, and forks a child per step:

* the child changes to the step's directory, replaces its whole environment with the step's,
  reads stdin from ``/dev/null`` (as the helper does), writes stdout and stderr to files, puts
  the script's own directory first on ``sys.path`` and runs the script as ``__main__``
  (``runpy``): an uncaught exception prints its traceback and exits 1, ``sys.exit(x)`` exits as
  the interpreter would;
* the helper runs in isolated mode (``python -I``: no ``PYTHONPATH``, no current directory, no
  user site-packages on ``sys.path``), so a script importing a module of this repository that it
  is not shipped with fails here as it fails in the container;
* nothing a step does reaches the next: each child is a fresh fork of the helper, which itself
  runs no step code;
* what the helper preloads is found by reading the scripts' import statements (:func:`imports`)
  and keeping the modules that are neither the standard library's nor shipped with the scripts.

The helper is used on Linux, where forking a process that has loaded native libraries but
started no threads in them is safe; macOS documents fork without exec as unsafe once system
frameworks are loaded (numpy may link Accelerate). Elsewhere, or when the helper cannot start
or dies, a step runs as a plain subprocess instead: slower, the same result. One helper per
interpreter and preload list lives as long as the process that started it (a second run in that
process reuses it).

This module is run as a script for the helper, so it imports only the standard library.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import importlib
import json
import os
import runpy
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

__all__ = ["Completed", "StepProcesses", "imports", "third_party_modules"]


@dataclass(frozen=True)
class Completed:
    """What ``subprocess.run(..., capture_output=True, text=True)`` returns, in short."""

    returncode: int
    stdout: str
    stderr: str


def imports(source: str) -> set[str]:
    """Every absolute module name an ``import`` or ``from ... import`` in ``source`` names,
    wherever it is (also inside functions); relative imports are left out."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def third_party_modules(files: Iterable[Path]) -> tuple[str, ...]:
    """The modules ``files`` import that are neither the standard library's nor one of the
    files' own (a module shipped next to a script), sorted."""
    paths = sorted(set(files))
    local = {path.stem for path in paths}
    found: set[str] = set()
    for path in paths:
        found |= imports(path.read_text(encoding="utf-8"))
    own = sys.stdlib_module_names | local  # the standard library lists __future__ too
    return tuple(sorted(name for name in found if name.partition(".")[0] not in own))


class _Zygote:
    """The helper process and its two pipes; one request at a time."""

    def __init__(self, python: str, preload: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            [python, "-I", "-B", str(Path(__file__).resolve()), *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.lock = threading.Lock()
        ready = self._read()
        if "ready" not in ready:
            raise OSError(f"step helper did not start: {ready}")

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise OSError("step helper exited")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def run(self, command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Completed:
        with self.lock, tempfile.TemporaryDirectory(prefix="step-") as captured:
            out, err = Path(captured, "stdout"), Path(captured, "stderr")
            request = {
                "argv": list(command[1:]),
                "cwd": str(cwd),
                "env": dict(env),
                "stdout": str(out),
                "stderr": str(err),
            }
            assert self.process.stdin is not None
            try:
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
            except (BrokenPipeError, OSError) as exc:
                raise OSError("step helper exited") from exc
            reply = self._read()
            return Completed(
                int(reply["returncode"]),
                out.read_text(encoding="utf-8", errors="replace"),
                err.read_text(encoding="utf-8", errors="replace"),
            )

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the helper's loop ends at end of input
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


#: Where steps fork from the helper unless told otherwise (see the module's docstring).
FORK_BY_DEFAULT = sys.platform.startswith("linux") and hasattr(os, "fork")

_HELPERS: dict[tuple[str, tuple[str, ...]], _Zygote | None] = {}
_HELPERS_LOCK = threading.Lock()


def _close_helpers() -> None:
    with _HELPERS_LOCK:
        for helper in _HELPERS.values():
            if helper is not None:
                helper.close()
        _HELPERS.clear()


atexit.register(_close_helpers)


class StepProcesses:
    """Runs step commands (``[python, script, *args]``) through the shared helper for
    ``python`` and ``preload`` when it can, as subprocesses otherwise."""

    def __init__(self, python: str, preload: Sequence[str], *, fork: bool | None = None) -> None:
        self.python = python
        self.preload = tuple(preload)
        self.fork = FORK_BY_DEFAULT if fork is None else fork

    def _helper(self) -> _Zygote | None:
        key = (self.python, self.preload)
        with _HELPERS_LOCK:
            if key not in _HELPERS:
                try:
                    _HELPERS[key] = _Zygote(self.python, self.preload)
                except OSError:
                    _HELPERS[key] = None  # never retried in this process: subprocesses
            return _HELPERS[key]

    def _discard(self, helper: _Zygote) -> None:
        with _HELPERS_LOCK:
            helper.close()
            _HELPERS[(self.python, self.preload)] = None

    def run(self, command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Completed:
        if command[0] != self.python:
            raise ValueError(f"a step runs with {self.python}, not {command[0]}")
        helper = self._helper() if self.fork else None
        if helper is not None:
            try:
                return helper.run(command, cwd, env)
            except OSError:
                self._discard(helper)  # the step runs again, as a subprocess
        completed = subprocess.run(
            list(command), cwd=cwd, env=dict(env), capture_output=True, text=True, check=False
        )
        return Completed(completed.returncode, completed.stdout, completed.stderr)


# ---- the helper (run as ``python -I -B step_process.py <module>...``) --------------------------


def _exit_status(code: object) -> int:
    """What the interpreter exits with for ``SystemExit(code)`` (printing a non-int code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _child(request: Mapping[str, Any], channel: int) -> None:
    status = 1
    try:
        os.close(channel)
        os.chdir(request["cwd"])
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        os.environ.clear()
        os.environ.update(request["env"])
        sys.dont_write_bytecode = bool(request["env"].get("PYTHONDONTWRITEBYTECODE"))
        script = os.path.abspath(request["argv"][0])
        sys.argv = [script, *request["argv"][1:]]
        sys.path.insert(0, os.path.dirname(script))
        try:
            runpy.run_path(script, run_name="__main__")
            status = 0
        except SystemExit as exc:
            status = _exit_status(exc.code)
        except BaseException:  # the interpreter prints any uncaught exception, exits 1
            traceback.print_exc()
            status = 1
        atexit._run_exitfuncs()  # the interpreter's exit handlers, as at a normal exit
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed stream: nothing left to flush
                stream.flush()
        os._exit(status)


def _serve(preload: Sequence[str], requests: TextIO, channel: int) -> None:
    loaded = []
    for name in preload:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception:  # a step importing it fails in its own process, as without the helper
            continue

    def reply(document: Mapping[str, Any]) -> None:
        os.write(channel, (json.dumps(document) + "\n").encode())

    reply({"ready": loaded})
    for line in requests:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request, channel)
        _, wait_status = os.waitpid(pid, 0)
        reply({"returncode": os.waitstatus_to_exitcode(wait_status)})


def _main() -> None:
    # Requests come through a copy of the original stdin, replies go through a copy of the
    # original stdout. Standard input becomes /dev/null (what every step reads), standard output
    # becomes standard error (/dev/null too), so a preloaded module printing something cannot
    # corrupt the replies.
    requests = os.fdopen(os.dup(0), encoding="utf-8")
    channel = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    _serve(sys.argv[1:], requests, channel)


if __name__ == "__main__":
    _main()
