"""``python -m cli ...``: the same commands as the ``mlops`` console script."""

from cli.main import app

app(prog_name="mlops")
