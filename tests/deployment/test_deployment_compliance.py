"""The security gate: no unacknowledged cdk-nag finding in a stage holding the deployment stack.

``infra.compliance.findings(stage)`` runs in the session fixture before the stage is
synthesized, in the order of ``infra.app_builder.synthesize`` (gate, then synth)."""

from __future__ import annotations

import pytest
from deployment_stages import SynthesizedStage

from infra.compliance import RULE_PACKS


@pytest.mark.parametrize("kind", ["serverless", "instances"])
def test_no_unacknowledged_findings(
    kind: str, serverless_stage: SynthesizedStage, instance_stage: SynthesizedStage
) -> None:
    stage = serverless_stage if kind == "serverless" else instance_stage
    assert len(RULE_PACKS) == 3
    assert stage.findings == []
