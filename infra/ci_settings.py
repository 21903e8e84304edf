"""Prints one deployment setting from cdk.json for the branch workflows (cdk.json stays the one
source: the workflows hold no account, region or role of their own).

``python -m infra.ci_settings KEY`` with KEY one of:

* ``deploy-role-arn``: ``branch_environments.deploy_role_arn``, the role the workflows assume
  with GitHub's OIDC token;
* ``region``: the dev environment's region (branch stages deploy to the dev account);
* ``account``: the dev environment's account.

Exit status: 0 with the value on stdout; 2 with one line on stderr when the config is invalid,
the key unknown, or the value not set (a null role) or still a placeholder account.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from infra.config import CONTEXT_KEY, AppConfig, ConfigError, load_config


def _role(config: AppConfig) -> str:
    role = config.branch_environments.deploy_role_arn
    if role is None:
        raise ConfigError(
            "branch_environments.deploy_role_arn",
            None,
            "set the role the branch workflows assume (README 'Per-branch environments')",
        )
    return role


SETTINGS: dict[str, Callable[[AppConfig], str]] = {
    "deploy-role-arn": _role,
    "region": lambda config: config.environments["dev"].region,
    "account": lambda config: config.environments["dev"].account,
}


def setting(config: AppConfig, key: str, *, allow_placeholder: bool = False) -> str:
    """The value of ``key``; a placeholder dev account is refused unless ``allow_placeholder``."""
    dev = config.environments["dev"]
    if dev.placeholder_account and not allow_placeholder and key != "region":
        raise ConfigError(
            "environments.dev.account",
            dev.account,
            "still the shipped placeholder: set your dev account id before deploying branches",
        )
    return SETTINGS[key](config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.ci_settings", description=__doc__)
    parser.add_argument("key", choices=sorted(SETTINGS))
    parser.add_argument(
        "--allow-placeholder",
        action="store_true",
        help="print the value even when the dev account is the shipped placeholder",
    )
    args = parser.parse_args(argv)
    from infra.app_builder import load_cdk_json_context

    try:
        config = load_config(load_cdk_json_context().get(CONTEXT_KEY))
        value = setting(config, args.key, allow_placeholder=args.allow_placeholder)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    print(value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
