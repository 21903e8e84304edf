"""Exit codes and the one-line errors of the ``mlops`` CLI.

Every failure the operator can act on becomes :class:`CliError`: ``mlops: <what> (<hint>)`` on
stderr, no traceback, and one of the exit codes below (README "Operating: the mlops CLI").
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    TokenRetrievalError,
)

from infra.config import ConfigError

EXIT_OK = 0
#: An AWS API refused or failed (AccessDenied, ResourceNotFound, ...), a check did not pass, or a
#: precondition does not hold (a promotion refused, nothing to delete, a prompt declined).
EXIT_FAILURE = 1
#: Bad usage or configuration: an unknown option, a malformed ARN, an invalid cdk.json, a shared
#: stage given to teardown. (Typer's own usage errors exit 2 as well.)
EXIT_USAGE = 2
#: No usable AWS credentials (none found, a missing profile, expired or invalid ones) or no region.
EXIT_CREDENTIALS = 3
#: The command exists but its implementation is not in this checkout yet (``mlops cost``).
EXIT_NOT_AVAILABLE = 4

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 an AWS API refused or a check/precondition failed; 2 usage or "
    "configuration error; 3 missing or invalid AWS credentials or region; 4 not available in "
    "this checkout yet."
)

#: Error codes meaning "the caller's credentials are not usable" (not "not allowed").
_CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
    }
)
_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})


class CliError(Exception):
    """What went wrong, a hint at what to do, and the exit code."""

    def __init__(self, what: str, hint: str = "", code: int = EXIT_FAILURE) -> None:
        super().__init__(what)
        self.what, self.hint, self.code = what, hint, code

    def line(self) -> str:
        return f"mlops: {self.what}" + (f" ({self.hint})" if self.hint else "")


def _client_error(error: ClientError) -> CliError:
    info = error.response.get("Error", {})
    code = str(info.get("Code", "Unknown"))
    message = " ".join(str(info.get("Message", "")).split())
    operation = error.operation_name
    what = f"{operation} refused: {code}" + (f": {message}" if message else "")
    if code in _CREDENTIAL_CODES:
        return CliError(what, "refresh the credentials (aws sso login, a new session)", 3)
    if code in _DENIED_CODES:
        return CliError(what, "the caller lacks this permission: check the role or --profile")
    if "NotFound" in code or "does not exist" in message.lower():
        return CliError(what, "check the name, the stage (--env/--branch) and --region")
    return CliError(what)


def translate(error: BaseException) -> CliError | None:
    """The CLI error for an exception an operator can act on; None for a bug (traceback)."""
    if isinstance(error, CliError):
        return error
    if isinstance(error, ConfigError):
        return CliError(str(error), "fix cdk.json's mlops context", EXIT_USAGE)
    if isinstance(error, NoRegionError):
        return CliError(
            "no AWS region", "pass --region or set AWS_REGION / the profile's region", 3
        )
    if isinstance(error, ProfileNotFound):
        return CliError(str(error), "check --profile / AWS_PROFILE against ~/.aws/config", 3)
    if isinstance(error, NoCredentialsError | PartialCredentialsError | TokenRetrievalError):
        return CliError(
            f"no usable AWS credentials: {error}",
            "set a profile (--profile, AWS_PROFILE), aws sso login, or environment credentials",
            3,
        )
    if isinstance(error, ClientError):
        return _client_error(error)
    if isinstance(error, EndpointConnectionError):
        return CliError(str(error), "check the region and the network")
    if isinstance(error, BotoCoreError):
        return CliError(str(error))
    return None
