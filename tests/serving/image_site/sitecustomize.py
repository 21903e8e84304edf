"""Imported at start-up by every Python process the serving tests start (this directory is put
first on their ``PYTHONPATH`` by ``tests/serving/conftest.py``).

The serving image installs ``serving/image/requirements.txt`` and nothing else; scikit-learn is
not in it (a test checks), but the dev venv the tests run in has it. XGBoost imports scikit-learn
whenever it is installed (``xgboost.compat``), so without this a server started by a test would
run with a module the image lacks, and spend about 0.8 s of CPU importing it. Here it is not
importable, as in the image; every other module is found as usual. The AWS container stack
(``serving.container_server``) removes ``PYTHONPATH`` from its environment, so its scikit-learn
(the SageMaker XGBoost image ships one) is untouched.

Python 3.8 syntax: any interpreter the tests start may read this file.
"""

import sys

NOT_IN_IMAGE = ("sklearn",)


class _NotInImage:
    """A meta path finder that answers "no such module" for what the image does not install."""

    def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
        if name.partition(".")[0] in NOT_IN_IMAGE:
            raise ModuleNotFoundError(
                f"No module named {name!r} (not in the serving image)", name=name
            )
        return None


sys.meta_path.insert(0, _NotInImage())
