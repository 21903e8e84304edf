"""The operator CLI: one console script, ``mlops`` (``[project.scripts]`` in pyproject.toml).

Top floor of the layout (tests/foundation/test_layout.py): it may import every floor below it
(ground, capabilities, stacks, app assembly); nothing imports it.
"""
