"""make bench-serving (serving/bench.py, serving/bench_shape.py): step judgement, summary, CLI,
and one tiny end-to-end run of both stacks (seconds, low rate: the machinery, not the numbers)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from serving import bench
from serving.bench import Round, StepResult, judge_step, summarize

REPO_ROOT = Path(__file__).resolve().parents[2]


def records(times: list[float], failed: int = 0) -> list[tuple[float, float, bool]]:
    return [(float(i), t, i < failed) for i, t in enumerate(times)]


def step(rate: float, held: bool, requests: int = 100, cpu: float = 0.05) -> StepResult:
    return StepResult(
        rate=rate, offered=rate, requests=requests, failures=0, achieved=rate,
        p99_ms=1.0 if held else 50.0, server_cpu=cpu, locust_cpu=cpu / 2, held=held,
    )  # fmt: skip


def test_a_step_holds_at_p99_within_the_limit_without_failures() -> None:
    times = [1.0] * 990 + [10.0] * 10  # the 99th percentile (nearest rank) is 1.0 ... 10.0
    result = judge_step(
        rate=100, offered=101, records=records(times), window=10.0, requests=1100,
        server_cpu=0.4, locust_cpu=0.2,
    )  # fmt: skip
    assert result.held and result.p99_ms == 1.0 and result.achieved == 100.0
    assert result.requests == 1100  # CPU per request divides by the whole step's requests


@pytest.mark.parametrize(
    ("times", "failed", "window", "why"),
    [
        ([1.0] * 980 + [10.5] * 20, 0, 10.0, "p99 above 10 ms"),
        ([1.0] * 1000, 1, 10.0, "one failed request"),
        ([1.0] * 1000, 0, 12.0, "only 83 req/s of the 101 offered completed"),
        ([], 0, 10.0, "no request at all"),
    ],
)
def test_a_step_misses(times: list[float], failed: int, window: float, why: str) -> None:
    result = judge_step(
        rate=100, offered=101, records=records(times, failed), window=window, requests=len(times),
        server_cpu=0.0, locust_cpu=0.0,
    )  # fmt: skip
    assert not result.held, why


def test_percentile_is_nearest_rank() -> None:
    assert bench.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert bench.percentile(list(map(float, range(1, 101))), 99) == 99.0
    assert math.isnan(bench.percentile([], 99))


def test_held_rate_is_the_highest_held_step() -> None:
    assert Round("image", 1, [step(500, True), step(750, True), step(1000, False)]).held_rate == 750
    # one disturbed step does not cap the round; the stricter reading stops there
    steps = [step(500, True), step(750, False), step(1000, True), step(1250, False)]
    bumpy = Round("aws", 1, steps)
    assert (bumpy.held_rate, bumpy.held_without_miss) == (1000, 500)
    assert Round("aws", 1, [step(500, False), step(750, False)]).held_rate == 0
    assert Round("aws", 1, []).held_rate == 0


def test_a_missed_rate_is_rerun_once_and_two_missed_rates_stop_the_round() -> None:
    assert bench.next_action([]) == "next"
    assert bench.next_action([step(500, True)]) == "next"
    assert bench.next_action([step(500, False)]) == "retry"
    assert bench.next_action([step(500, False), step(500, True)]) == "next"
    assert bench.next_action([step(500, False), step(500, False)]) == "next"  # one missed rate
    missed_twice = [step(500, True), step(750, False), step(750, False)]
    assert bench.next_action([*missed_twice, step(1000, False)]) == "retry"
    assert bench.next_action([*missed_twice, step(1000, False), step(1000, False)]) == "stop"
    assert bench.next_action([*missed_twice, step(1000, False), step(1000, True)]) == "next"


def test_attempts_are_grouped_by_rate() -> None:
    steps = [step(500, True), step(750, False), step(750, True), step(1000, False)]
    assert bench.by_rate(steps) == [(500, True, 1), (750, True, 2), (1000, False, 1)]
    assert Round("image", 1, steps).held_rate == 750
    assert Round("image", 1, steps).held_without_miss == 750  # 750 held on its rerun


def test_cpu_per_request_is_over_the_whole_round() -> None:
    one = Round("image", 1, [step(500, True, 1000, 0.2), step(750, True, 3000, 1.0)])
    assert one.cpu_ms_per_request == pytest.approx(0.3)  # 1.2 s / 4000 requests
    assert one.locust_ms_per_request == pytest.approx(0.15)
    assert math.isnan(Round("aws", 1, []).cpu_ms_per_request)


def test_summary_is_the_median_over_rounds_and_the_ratio() -> None:
    rounds = [
        Round("image", 1, [step(500, True), step(3000, True), step(3500, False)]),
        Round("aws", 1, [step(500, True), step(1000, True), step(1250, False)]),
        Round("aws", 2, [step(500, True), step(1000, True), step(1250, True)]),
        Round("image", 2, [step(500, True), step(2500, True), step(3000, False)]),
        Round("image", 3, [step(500, True), step(3000, True), step(3500, False)]),
        Round("aws", 3, [step(500, True), step(1000, True), step(1250, False)]),
    ]
    rounds[0].steps.insert(1, step(750, False))  # a disturbed step: 3000 held, strictly 500
    summary = summarize(rounds)
    assert summary.held == {"image": 3000, "aws": 1000}
    assert summary.ratio == 3.0
    assert summary.strict == {"image": 2500, "aws": 1000}
    assert summary.strict_ratio == 2.5
    text = bench.render(rounds, summary, workers=2)
    assert "ratio image/aws: 3.00 (target >= 2: MET)" in text
    assert "every lower rate held too: image 2500, aws 1000 req/s, ratio 2.50" in text
    assert re.search(r"holds\s+3000 req/s at p99 <= 10 ms", text)
    assert "1250:1.0*" in text and "1250:50.0" in text  # every step, held ones starred


def test_no_held_rate_for_aws_is_no_ratio() -> None:
    summary = summarize([Round("image", 1, [step(500, True)]), Round("aws", 1, [step(500, False)])])
    assert math.isnan(summary.ratio)
    assert "(target >= 2: NOT MET)" in bench.render([], summary, workers=2)


def test_step_results_round_trip_through_the_step_file() -> None:
    original = step(750, True)
    assert StepResult.from_dict(original.as_dict()) == original


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rates", "500,abc"], "expected comma-separated numbers"),
        (["--rates", "1000,500"], "expected increasing positive req/s"),
        (["--rates", "0"], "expected increasing positive req/s"),
        (["--stacks", "image,nginx"], "expected some of image,aws"),
        (["--step-seconds", "2", "--settle", "2"], "--settle 2: must be >= 0 and below"),
        (["--rounds", "0"], "must be positive"),
    ],
)
def test_bad_arguments_exit_2_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        bench.main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_tiny_run_of_both_stacks(model_dir: Path) -> None:
    """One round, one 1-second step at 40 req/s: both servers start, locust runs the stepped
    shape against each, the steps come back and the summary is printed."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "serving.bench", "--model-dir", str(model_dir)),
            *("--rounds", "1", "--rates", "40", "--step-seconds", "1", "--settle", "0.2"),
            *("--workers", "1"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"^image: http://127\.0\.0\.1:\d+ \(1 workers", out, re.M)
    assert re.search(r"^aws: http://127\.0\.0\.1:\d+ \(1 workers", out, re.M)
    for stack in ("image", "aws"):
        match = re.search(
            rf"^1\s+{stack}\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+40:([\d.]+)", out, re.M
        )
        assert match, out
        assert 0 < float(match.group(3)) < 50  # server CPU ms per request: measured
    assert re.search(r"^ratio image/aws: ", out, re.M)
