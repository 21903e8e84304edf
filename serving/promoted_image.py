"""Which image a version promoted to prod names (``deployment.promote``).

A staging version registered with ``serving_image: custom`` names staging's own serving
repository, in the staging account, which prod's model execution role may not pull from. Prod
has its own repository (``serving/infrastructure.py``), holding the image of the commit prod was
deployed from under the same content tag (the tag is the hash of the image's build context). So
the prod version names prod's repository with that tag, once ``ecr:DescribeImages`` in prod shows
the tag is there. Any other image (AWS's prebuilt framework images, public to every account) is
kept as it is.
"""

from __future__ import annotations

import re
from typing import Any

from infra.naming import Naming

#: ECR's repository name limit.
REPOSITORY_MAX = 256


def repository_name(naming: Naming) -> str:
    """The stage's serving-image repository, ``<project>-<env>-serving`` (no CDK import here:
    the promotion tool runs without it)."""
    return naming.resource("serving", REPOSITORY_MAX)


#: ``<account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>:<tag>`` (ECR's documented forms).
ECR_IMAGE = re.compile(
    r"(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.(?P<suffix>amazonaws\.com(?:\.cn)?)"
    r"/(?P<repository>[a-z0-9][a-z0-9._/-]*):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})",
    re.ASCII,
)


class ImageNotPromotable(Exception):
    """Prod lacks the image; the message says what to do, in one line."""


def promoted_image(
    image: str,
    *,
    source_repository: str,
    target_repository: str,
    target_account: str,
    target_ecr: Any,
) -> str:
    """``image`` as prod names it: staging's serving repository becomes prod's (same tag, and
    the tag must exist there); any other image is returned unchanged."""
    match = ECR_IMAGE.fullmatch(image)
    if match is None or match["repository"] != source_repository:
        return image
    tag = match["tag"]
    try:
        found = target_ecr.describe_images(
            repositoryName=target_repository, imageIds=[{"imageTag": tag}]
        ).get("imageDetails")
    except (
        target_ecr.exceptions.ImageNotFoundException,
        target_ecr.exceptions.RepositoryNotFoundException,
    ):
        found = None
    if not found:
        raise ImageNotPromotable(
            f"prod has no {target_repository}:{tag} (the serving image of this version): deploy "
            "prod with serving_image: custom from the commit staging was deployed from, then "
            "promote again"
        )
    return f"{target_account}.dkr.ecr.{match['region']}.{match['suffix']}/{target_repository}:{tag}"
