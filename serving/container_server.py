"""Serve a model artifact through the SageMaker XGBoost 1.7-1 image's serving stack, locally.

The stack (pinned packages, Python 3.8) lives in the venv of ``serving/container_env.py``; the
image's entry point is reproduced in ``serving/xgboost_image/xgboost_serving.py``. This module
lays the artifact out as SageMaker does (``model.tar.gz`` extracted into ``<base>/model``, the
contract's ``SAGEMAKER_PROGRAM`` and ``SAGEMAKER_SUBMIT_DIRECTORY`` with ``/opt/ml`` mapped to
``<base>``), starts gunicorn on 127.0.0.1 in a process group of its own, waits (polling, with a
generous deadline) until ``/ping`` answers 200, and on stop ends the whole group: no pre-forked
worker outlives it, whatever happened in between.

    python -m serving.container_server --model .work/pipeline-local/s3/Train/model/model.tar.gz
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from pipelines.model_build import contract
from serving import container_env
from serving.processes import stop_process_group

APP_SCRIPT = Path(__file__).resolve().parent / "xgboost_image" / "xgboost_serving.py"
SAGEMAKER_ROOT = "/opt/ml"
_LISTENING = re.compile(r"Listening at: http://([0-9.]+):(\d+)")


class ContainerServerError(Exception):
    """The image's stack did not come up (the message carries the end of its log)."""


class ContainerServer:
    """The artifact served by the image's stack on ``127.0.0.1`` (``url`` once started)."""

    def __init__(
        self,
        model: Path,
        workdir: Path | None = None,
        workers: int = 1,
        port: int = 0,
        environment: dict[str, str] | None = None,
        python: Path | None = None,
    ) -> None:
        self.model = Path(model)
        self.workdir = Path(workdir) if workdir else None
        self.workers = workers
        self.port = port
        self.environment = environment or {}
        self.python = python
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.log: list[str] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._reader: threading.Thread | None = None

    # -- layout -------------------------------------------------------------------------------

    def _lay_out(self) -> tuple[Path, dict[str, str]]:
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="xgb-image-")
            self.workdir = Path(self._tmp.name)
        base = self.workdir / "opt_ml"
        if base.exists():
            shutil.rmtree(base)
        model_dir = base / "model"
        model_dir.mkdir(parents=True)
        if self.model.is_dir():
            shutil.copytree(self.model, model_dir, dirs_exist_ok=True)
        else:
            with tarfile.open(self.model, "r:gz") as archive:
                archive.extractall(model_dir, filter="data")
        env = {
            key: value.replace(SAGEMAKER_ROOT, str(base), 1)
            if value.startswith(SAGEMAKER_ROOT + "/")
            else value
            for key, value in contract.SERVING_ENVIRONMENT.items()
        }
        env["SAGEMAKER_BASE_DIR"] = str(base)
        env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(self.workers)
        return base, env

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, deadline: float = 180.0) -> ContainerServer:
        python = self.python or container_env.ensure_venv()
        base, env = self._lay_out()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env, **self.environment}
        for leak in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):  # nothing of the project's venv
            full_env.pop(leak, None)
        self.process = subprocess.Popen(
            [str(python), str(APP_SCRIPT), "--bind", f"127.0.0.1:{self.port}"],
            cwd=base,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: stop() ends every worker
        )
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        try:
            self._wait_until_ready(time.monotonic() + deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _read_log(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line.rstrip("\n"))

    def _fail(self, why: str) -> ContainerServerError:
        tail = "\n".join(self.log[-30:])
        return ContainerServerError(f"{why}; log:\n{tail}")

    def _wait_until_ready(self, deadline: float) -> None:
        assert self.process is not None
        address = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self._fail(f"the server exited with {self.process.returncode}")
            if address is None:
                found = [m for m in map(_LISTENING.search, list(self.log)) if m]
                if found:
                    address = (found[0].group(1), int(found[0].group(2)))
                    self.url = f"http://{address[0]}:{address[1]}"
            if address is not None and self._ping(address) == 200:
                return
            time.sleep(0.2)
        raise self._fail("no 200 from /ping before the deadline")

    @staticmethod
    def _ping(address: tuple[str, int]) -> int | None:
        conn = http.client.HTTPConnection(*address, timeout=30)
        try:
            conn.request("GET", "/ping")
            return conn.getresponse().status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)
            if self._reader is not None:
                self._reader.join(10)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ContainerServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", type=Path, required=True, help="model.tar.gz or its directory")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if not args.model.exists():
        print(f"ERROR: --model {args.model}: no such file or directory", file=sys.stderr)
        return 2
    try:
        server = ContainerServer(args.model, workers=args.workers, port=args.port).start()
    except (container_env.ContainerEnvError, ContainerServerError, OSError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(f"serving {args.model} through the XGBoost 1.7-1 image's stack on {server.url}")
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        while not stopped.wait(1.0) and server.process and server.process.poll() is None:
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
