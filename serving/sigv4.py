"""SigV4-signed ``InvokeEndpoint`` requests, built with botocore's own signer.

The load test's endpoint mode (``python -m serving.loadtest --endpoint-name``) sends its requests
over locust's HTTP client, not through boto3, so each one is signed here exactly as the SageMaker
runtime client would sign it: ``POST https://runtime.sagemaker.REGION.amazonaws.com/endpoints/
NAME/invocations`` with ``SigV4Auth`` (service ``sagemaker``, the region's scope), credentials
from the default chain (env, profile, SSO, container or instance role; refreshed when they
expire). Imports botocore only (no boto3, no locust).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.session import get_session

#: The signing name of the SageMaker runtime (its endpoint prefix is ``runtime.sagemaker``).
SIGNING_SERVICE = "sagemaker"
#: ``EndpointName`` in the botocore model of InvokeEndpoint.
ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", re.ASCII)
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+", re.ASCII)


class SigningError(ValueError):
    """No usable credentials, or a bad endpoint name, region or URL (one line)."""


def runtime_url(region: str) -> str:
    """The regional SageMaker runtime endpoint (``aws`` partition)."""
    if not _REGION.fullmatch(region):
        raise SigningError(f"region {region!r}: expected a region name like eu-west-1")
    return f"https://runtime.sagemaker.{region}.amazonaws.com"


def invocations_path(endpoint_name: str) -> str:
    if not ENDPOINT_NAME.fullmatch(endpoint_name):
        raise SigningError(
            f"endpoint name {endpoint_name!r}: expected 1-63 letters, digits and hyphens "
            "(SageMaker's EndpointName), starting and ending with a letter or digit"
        )
    return f"/endpoints/{quote(endpoint_name, safe='')}/invocations"


def default_credentials() -> Credentials:
    """Credentials from botocore's default chain; SigningError when there are none."""
    credentials = get_session().get_credentials()
    if credentials is None:
        raise SigningError(
            "no AWS credentials found (environment, profile, SSO, container or instance role)"
        )
    return credentials


class InvocationSigner:
    """Signs ``InvokeEndpoint`` requests for one endpoint. ``base_url`` defaults to the regional
    runtime endpoint; another base (a VPC endpoint, a local test server) is signed for as is."""

    def __init__(
        self,
        endpoint_name: str,
        region: str,
        credentials: Credentials | ReadOnlyCredentials,
        base_url: str | None = None,
    ) -> None:
        self.path = invocations_path(endpoint_name)
        self.region = region
        self.base_url = (base_url or runtime_url(region)).rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
            raise SigningError(f"endpoint URL {base_url!r}: expected https://HOST[:PORT]")
        self.url = self.base_url + self.path
        #: Signed and sent as is: what the server checks can't differ by the HTTP client's
        #: choice of writing a default port or not.
        self.host = parts.netloc
        self._credentials = credentials

    def _frozen(self) -> ReadOnlyCredentials:
        credentials = self._credentials
        if isinstance(credentials, Credentials):  # refreshable ones refresh here when due
            return credentials.get_frozen_credentials()
        return credentials

    def headers(self, body: bytes, content_type: str, accept: str = "application/json") -> Any:
        """The headers to send with ``body``: Host, Content-Type, Accept, X-Amz-Date,
        Authorization (AWS4-HMAC-SHA256 over them and the payload hash) and, with session
        credentials, X-Amz-Security-Token."""
        request = AWSRequest(
            method="POST",
            url=self.url,
            data=body,
            headers={"Host": self.host, "Content-Type": content_type, "Accept": accept},
        )
        SigV4Auth(self._frozen(), SIGNING_SERVICE, self.region).add_auth(request)
        return dict(request.headers.items())
