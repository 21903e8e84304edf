"""The bundled dataset is the committed, reproducible output of dataset.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from mb_helpers import BUNDLED_CSV

from pipelines.model_build import contract, dataset


def test_committed_csv_equals_a_fresh_generation() -> None:
    assert BUNDLED_CSV.read_bytes() == dataset.render_csv().encode("utf-8"), (
        "regenerate with: python -m pipelines.model_build.dataset"
    )
    assert Path(__file__).resolve().parents[2] / contract.BUNDLED_DATASET == BUNDLED_CSV


def test_layout_and_labels() -> None:
    frame = pd.read_csv(BUNDLED_CSV)
    assert frame.shape == (569, 31)
    assert list(frame.columns[:3]) == ["mean_radius", "mean_texture", "mean_perimeter"]
    assert "worst_concave_points" in frame.columns
    assert frame.columns[-1] == "target"
    assert frame["target"].value_counts().to_dict() == {1: 357, 0: 212}  # 1 = benign
    assert frame.iloc[0]["mean_radius"] == 17.99 and frame.iloc[0]["target"] == 0
    assert not frame.isna().any().any()


def test_cli_writes_the_same_bytes(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "bc.csv"
    assert dataset.main(["--out", str(out)]) == 0
    assert out.read_bytes() == BUNDLED_CSV.read_bytes()
