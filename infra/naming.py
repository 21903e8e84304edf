"""Every physical name in the app derives from project + environment (+ branch slug) here.

Names are lowercase, hyphenated and checked against each service's limit. A name that would be too
long is truncated and suffixed with a stable hash of the full name, so it stays unique and never
changes between two synths.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
HASH_LENGTH = 8

# Service limits on name length.
SAGEMAKER_MAX = 63  # pipelines, model package groups, endpoints, models
IAM_ROLE_MAX = 64
GLUE_MAX = 255
ATHENA_WORKGROUP_MAX = 128
STATE_MACHINE_MAX = 80
EVENT_RULE_MAX = 64
SQS_MAX = 80
SNS_MAX = 256
LOG_GROUP_MAX = 512


def _shorten(name: str, max_length: int, separator: str = "-") -> str:
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_LENGTH]
    head = name[: max_length - HASH_LENGTH - 1].rstrip(separator)
    return f"{head}{separator}{digest}"


def slugify(text: str, max_length: int = 24) -> str:
    """Lowercase, runs of anything but letters and digits become one hyphen, trimmed."""
    slug = _NON_ALNUM.sub("-", text.lower()).strip("-")
    return _shorten(slug, max_length) if slug else ""


@dataclass(frozen=True)
class Naming:
    """Names for one stage: ``<project>-<env>`` or ``<project>-br-<branch-slug>``."""

    project: str
    qualifier: str

    @property
    def prefix(self) -> str:
        return f"{self.project}-{self.qualifier}"

    def resource(self, suffix: str, max_length: int = SAGEMAKER_MAX) -> str:
        """A hyphenated name (SageMaker, IAM, Step Functions, SQS, SNS, EventBridge...)."""
        return _shorten(f"{self.prefix}-{slugify(suffix, max_length)}", max_length)

    def glue(self, suffix: str) -> str:
        """Glue/Athena catalog names: lowercase with underscores (hyphens break Athena SQL)."""
        return _shorten(self.resource(suffix, GLUE_MAX).replace("-", "_"), GLUE_MAX, "_")

    def stack(self, suffix: str) -> str:
        return self.resource(suffix, 128)

    # Names shared between capabilities (the model-build pipeline registers into the group the
    # deployment workflow listens to, and so on): defined once here.
    @property
    def model_package_group(self) -> str:
        return self.resource("models")

    @property
    def pipeline(self) -> str:
        return self.resource("model-build")

    @property
    def endpoint(self) -> str:
        return self.resource("endpoint")

    @property
    def model_monitor_prefix(self) -> str:
        """Names of what the model_monitor backend's Lambda creates at run time (job
        definitions ``<this>-dq-v<n>-<hash>``, schedules ``<this>-data-quality``), which
        teardown deletes by that name."""
        return self.resource("mm", 40)

    @property
    def sagemaker_project_tag(self) -> str:
        """Value of the ``sagemaker:project-name`` tag that groups resources in Studio."""
        return self.prefix
