"""Prints the stage id that ``make deploy/diff/destroy`` target.

``python -m infra.stage_name [--branch B] [--env dev|staging|prod]``: on a feature branch (given, or
the checked-out one) its ephemeral stage; on the default branch the shared stage of ``--env``.
"""

from __future__ import annotations

import argparse
import sys

from infra.app_builder import current_git_branch, load_cdk_json_context, resolve_branch
from infra.config import CONTEXT_KEY, ENVIRONMENTS, ConfigError, StageKind, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--branch", default=None)
    parser.add_argument("--env", default="dev", choices=ENVIRONMENTS)
    args = parser.parse_args(argv)
    try:
        config = load_config(load_cdk_json_context().get(CONTEXT_KEY))
        branch = resolve_branch(args.branch, config, current_git_branch())
        stages = config.stages_for_branch(branch)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    ephemeral = [s for s in stages if s.kind is StageKind.EPHEMERAL]
    chosen = ephemeral[0] if ephemeral else next(s for s in stages if s.env_name == args.env)
    print(chosen.stage_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
