"""The SageMaker XGBoost 1.7-1 image's serving entry point, script mode, single model: reproduced.

Runs with the container venv's Python 3.8 (``serving/container_env.py``), never imported by the
project itself. The image's own package (``sagemaker_xgboost_container``) is not published on
PyPI, so what its serving path does for a user module is restated here, around the REAL pinned
``sagemaker-containers`` classes that do the work:

* ``python xgboost_serving.py --bind HOST:PORT`` is the image's ``serve`` command
  (``serving_entrypoint`` with ``SAGEMAKER_MULTI_MODEL`` unset): ``OMP_NUM_THREADS`` defaults
  to 1; the ``SAGEMAKER_SUBMIT_DIRECTORY`` is copied into the code directory with
  ``sagemaker_containers._files.download_and_extract`` and the ``SAGEMAKER_PROGRAM`` module is
  imported once (the image also ``pip install``-s that directory, which would write into the
  shared venv, so the code directory goes on the path instead: the same module is imported);
  then it execs gunicorn with the image's arguments (``-k gevent``, ``--timeout``,
  ``--worker-connections``, ``-w``, ``--log-level``, ``--keep-alive``, ``--pythonpath``).
  The image puts nginx in front on port 8080; here gunicorn binds HOST:PORT itself.
* ``main(environ, start_response)`` is the WSGI app gunicorn runs (the image's
  ``SAGEMAKER_SERVING_MODULE``, ``sagemaker_xgboost_container.serving:main``): on the first
  request a worker imports the user module and builds ``sagemaker_containers``'
  ``_transformer.Transformer`` from its ``model_fn`` and either ``transform_fn`` or
  ``input_fn``/``predict_fn``/``output_fn`` (both at once is refused, as the image does),
  calls ``initialize()`` (which runs ``model_fn``) and serves through ``_worker.Worker``.
  Functions the module lacks fall back to ``sagemaker_containers``' defaults; the image's
  XGBoost-specific defaults differ, which does not matter for a module defining them all.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any

from sagemaker_containers.beta.framework import env, files, transformer, worker

APP = "xgboost_serving:main"
_app = None


def _user_module_transformer(user_module: Any) -> Any:
    model_fn = getattr(user_module, "model_fn", None)
    input_fn = getattr(user_module, "input_fn", None)
    predict_fn = getattr(user_module, "predict_fn", None)
    output_fn = getattr(user_module, "output_fn", None)
    transform_fn = getattr(user_module, "transform_fn", None)
    if transform_fn and (input_fn or predict_fn or output_fn):
        raise ValueError(  # the image raises sagemaker_algorithm_toolkit's UserError here
            "Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn"
        )
    if transform_fn is not None:
        return transformer.Transformer(model_fn=model_fn, transform_fn=transform_fn)
    return transformer.Transformer(
        model_fn=model_fn, input_fn=input_fn, predict_fn=predict_fn, output_fn=output_fn
    )


def main(environ: dict[str, Any], start_response: Any) -> Any:
    global _app
    if _app is None:
        serving_env = env.ServingEnv()
        user_module = importlib.import_module(serving_env.module_name)
        user_module_transformer = _user_module_transformer(user_module)
        user_module_transformer.initialize()
        _app = worker.Worker(
            transform_fn=user_module_transformer.transform, module_name=serving_env.module_name
        )
    return _app(environ, start_response)


def gunicorn_args(serving_env: Any, bind: str, pythonpath: str) -> list[str]:
    workers = serving_env.model_server_workers
    return [
        *("gunicorn", "--timeout", str(serving_env.model_server_timeout), "-k", "gevent"),
        *("--pythonpath", pythonpath, "-b", bind),
        *("--worker-connections", str(1000 * workers), "-w", str(workers)),
        *("--log-level", os.getenv("SAGEMAKER_GUNICORN_LOG_LEVEL", "info")),
        *("--keep-alive", os.getenv("SAGEMAKER_GUNICORN_KEEP_ALIVE", "2")),
        APP,
    ]


def serve(bind: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    serving_env = env.ServingEnv()
    if not serving_env.module_name:
        raise SystemExit("SAGEMAKER_PROGRAM is not set: only script mode is reproduced here")
    files.download_and_extract(serving_env.module_dir, env.code_dir)
    sys.path.insert(0, env.code_dir)
    importlib.import_module(serving_env.module_name)  # fails the start, as in the image
    here = os.path.dirname(os.path.abspath(__file__))
    pythonpath = ",".join([here, *sys.path, env.code_dir])
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    sys.stderr.flush()
    os.execv(gunicorn, gunicorn_args(serving_env, bind, pythonpath))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bind", default="127.0.0.1:8080")
    serve(parser.parse_args().bind)
