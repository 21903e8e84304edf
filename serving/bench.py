"""``make bench-serving``: the serving image's stack and AWS's XGBoost image stack, side by side.

    python -m serving.bench [--rounds 3] [--rates 500,750,...] [--step-seconds 5] [--workers 2]

Both stacks serve the same model (``serving.loadtest``'s model resolution; the artifact gets the
handler code as the Train step leaves it) with the same number of workers:

* ``image``: ``python -m serving.serve serve`` (the image's entry point and uvicorn
  configuration, run from the repository: the code the image copies), with
  ``SAGEMAKER_MODEL_SERVER_WORKERS``;
* ``aws``: the SageMaker XGBoost 1.7-1 image's serving stack (``serving/container_server.py``:
  sagemaker-containers' Flask worker under gunicorn with gevent, Python 3.8, xgboost 1.7.4).

Both servers start once; then ``--rounds`` rounds run them alternately (image first in odd
rounds, aws first in even ones), each a single locust process (``serving/locustfile.py``'s
``LocalInvocationsUser``, the same mixed CSV/JSON payloads) stepping through ``--rates`` (req/s
offered, ``--step-seconds`` each, the first ``--settle`` s of a step left out). A step misses
with p99 above 10 ms, a failed request, or less than 90% of the offered rate completed; a
missed rate is run once more (a burst of other work on the machine costs a rerun, not the
rate), and the round stops after two rates in a row missed twice. A round's held rate is the
highest rate held in one of its attempts.

Printed: per round and stack the highest rate held (p99 <= 10 ms, zero failures) and the server's
CPU per request (its process tree's CPU over the round / requests answered: independent of what
else loads the machine, unlike the held rate); then per stack the median held rate over the
rounds and the ratio image/aws. Exit status: 0 when the run completed (whatever the ratio), 1 when
a server or locust broke, 2 on bad arguments, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILES = "serving/locustfile.py,serving/bench_shape.py"
DEFAULT_RATES = (500, 750, 1000, 1250, 1500, 1750, 2000, 2250, 2500, 2750, 3000, 3500, 4000, 5000)
DEFAULT_ROUNDS = 3
DEFAULT_STEP_SECONDS = 4.0
DEFAULT_SETTLE_SECONDS = 1.0
DEFAULT_WORKERS = 2
MAX_P99_MS = 10.0
USER_RATE = 20.0  # req/s per locust user (serving.loadtest's default)
TARGET_RATIO = 2.0
MISSES_TO_STOP = 2  # consecutive rates missed (twice each) that end a round
ATTEMPTS = 2  # runs of a rate before it counts as missed
STACKS = ("image", "aws")


class BenchError(RuntimeError):
    """A server or locust broke (not: a step missed)."""


# ----------------------------------------------------------------------------------------------
# Steps: judged inside locust (bench_shape.py), summarised here
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    rate: float  # the step's nominal rate
    offered: float  # users x per-user rate
    requests: int  # completed in the whole step (CPU per request divides by this)
    failures: int  # in the window
    achieved: float  # req/s completed in the window
    p99_ms: float
    server_cpu: float  # seconds, whole step
    locust_cpu: float  # seconds, whole step
    held: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepResult:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100.0 * len(ordered))) - 1]


def judge_step(
    *,
    rate: float,
    offered: float,
    records: Sequence[tuple[float, float, bool]],
    window: float,
    requests: int,
    server_cpu: float,
    locust_cpu: float,
    max_p99_ms: float = MAX_P99_MS,
    min_share: float = 0.9,
) -> StepResult:
    """A step holds when its window had requests, none failed, p99 <= ``max_p99_ms`` and at
    least ``min_share`` of the offered rate completed (a stalled server answers few requests,
    all of them fast)."""
    times = [r[1] for r in records]
    failures = sum(1 for r in records if r[2])
    achieved = len(times) / window if window > 0 else 0.0
    p99 = percentile(times, 99)
    held = bool(times) and failures == 0 and p99 <= max_p99_ms and achieved >= min_share * offered
    return StepResult(
        rate=rate,
        offered=offered,
        requests=requests,
        failures=failures,
        achieved=achieved,
        p99_ms=p99,
        server_cpu=server_cpu,
        locust_cpu=locust_cpu,
        held=held,
    )


def by_rate(steps: Sequence[StepResult]) -> list[tuple[float, bool, int]]:
    """(rate, held in any attempt, attempts) per rate, in the order run."""
    grouped: list[tuple[float, bool, int]] = []
    for step in steps:
        if grouped and grouped[-1][0] == step.rate:
            rate, held, attempts = grouped[-1]
            grouped[-1] = (rate, held or step.held, attempts + 1)
        else:
            grouped.append((step.rate, step.held, 1))
    return grouped


def next_action(steps: Sequence[StepResult]) -> str:
    """After ``steps``: ``"retry"`` the last rate (it missed once: one disturbance from other
    processes costs a rerun, not the rate), go to the ``"next"`` rate, or ``"stop"`` after
    ``MISSES_TO_STOP`` rates in a row missed in all their ``ATTEMPTS``."""
    if not steps:
        return "next"
    rates = by_rate(steps)
    _, held, attempts = rates[-1]
    if not held and attempts < ATTEMPTS:
        return "retry"
    trailing = 0
    for _, held, _ in reversed(rates):
        if held:
            break
        trailing += 1
    return "stop" if trailing >= MISSES_TO_STOP else "next"


@dataclass
class Round:
    stack: str
    number: int
    steps: list[StepResult] = field(default_factory=list)

    @property
    def held_rate(self) -> float:
        """The highest rate held in one of its attempts (0 when none held). A lower rate that
        missed does not cap it; the round stops after ``MISSES_TO_STOP`` missed rates in a row."""
        return max((step.rate for step in self.steps if step.held), default=0.0)

    @property
    def held_without_miss(self) -> float:
        """The stricter reading: the top of the leading run of held steps (every lower step
        held too). Printed beside ``held_rate``, with its own ratio."""
        held = 0.0
        for rate, rate_held, _ in by_rate(self.steps):
            if not rate_held:
                break
            held = rate
        return held

    @property
    def cpu_ms_per_request(self) -> float:
        requests = sum(s.requests for s in self.steps)
        return 1000.0 * sum(s.server_cpu for s in self.steps) / requests if requests else math.nan

    @property
    def locust_ms_per_request(self) -> float:
        requests = sum(s.requests for s in self.steps)
        return 1000.0 * sum(s.locust_cpu for s in self.steps) / requests if requests else math.nan


@dataclass(frozen=True)
class Summary:
    held: dict[str, float]  # median held rate per stack
    cpu_ms: dict[str, float]  # median CPU ms per request per stack
    ratio: float
    strict: dict[str, float]  # median held_without_miss per stack
    strict_ratio: float


def summarize(rounds: Sequence[Round]) -> Summary:
    held: dict[str, float] = {}
    strict: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for stack in STACKS:
        mine = [r for r in rounds if r.stack == stack]
        held[stack] = statistics.median(r.held_rate for r in mine) if mine else 0.0
        strict[stack] = statistics.median(r.held_without_miss for r in mine) if mine else 0.0
        costs = [r.cpu_ms_per_request for r in mine if not math.isnan(r.cpu_ms_per_request)]
        cpu[stack] = statistics.median(costs) if costs else math.nan

    def ratio(rates: dict[str, float]) -> float:
        return rates["image"] / rates["aws"] if rates["aws"] else math.nan

    return Summary(held, cpu, ratio(held), strict, ratio(strict))


def render(rounds: Sequence[Round], summary: Summary, workers: int) -> str:
    lines = [
        f"{'round':<6} {'stack':<6} {'held req/s':>10} {'no miss':>8} {'CPU ms/req':>10} "
        f"{'locust ms/req':>13}  steps (rate: p99 ms, * = held)",
    ]
    for r in rounds:
        steps = " ".join(
            f"{s.rate:g}:{s.p99_ms:.1f}{'*' if s.held else ''}"
            + (f"({s.failures} failed)" if s.failures else "")
            for s in r.steps
        )
        lines.append(
            f"{r.number:<6} {r.stack:<6} {r.held_rate:>10g} {r.held_without_miss:>8g} "
            f"{r.cpu_ms_per_request:>10.3f} {r.locust_ms_per_request:>13.3f}  {steps}"
        )
    lines.append("")
    for stack, label in (("image", "serving image (uvicorn)"), ("aws", "AWS XGBoost 1.7-1 stack")):
        lines.append(
            f"{label:<26} holds {summary.held[stack]:>6g} req/s at p99 <= {MAX_P99_MS:g} ms, "
            f"0 failures (median of rounds); server CPU {summary.cpu_ms[stack]:.3f} ms/request"
        )
    verdict = "MET" if summary.ratio >= TARGET_RATIO else "NOT MET"  # NaN (aws held 0): not met
    lines.append(
        f"ratio image/aws: {summary.ratio:.2f} (target >= {TARGET_RATIO:g}: {verdict}); "
        f"{workers} workers each, {os.cpu_count()} cores"
    )
    lines.append(
        f"stricter, every lower rate held too: image {summary.strict['image']:g}, "
        f"aws {summary.strict['aws']:g} req/s, ratio {summary.strict_ratio:.2f}"
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Processes
# ----------------------------------------------------------------------------------------------


def listening_sockets(port: int) -> int:
    """How many TCP sockets listen on ``port`` (any address; Linux /proc/net/tcp and tcp6)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A" and fields[1].endswith(f":{port:04X}"):
                count += 1
    return count


class _ImageStack:
    """``python -m serving.serve serve`` on a free loopback port, as the image runs it."""

    def __init__(self, model_dir: Path, workers: int, scratch: Path) -> None:
        self.model_dir = model_dir
        self.workers = workers
        self.log = scratch / "image-server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def launch(self) -> None:
        """Start the server process (returns at once: the other stack starts meanwhile)."""
        env = {
            **os.environ,
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(self.workers),
            "OMP_NUM_THREADS": "1",  # as the image's ENV sets it
        }
        cmd = [
            *(sys.executable, "-m", "serving.serve", "serve", "--host", "127.0.0.1"),
            *("--port", "0", "--model-dir", str(self.model_dir)),
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self) -> None:
        """Wait until every worker serves (launching first if needed)."""
        from serving import loadtest

        if self.process is None:
            self.launch()
        assert self.process is not None
        try:
            self.url = loadtest.wait_for_url(self.log, self.process, loadtest.SERVER_START_TIMEOUT)
            host, port = self.url.removeprefix("http://").rsplit(":", 1)
            loadtest.wait_for_ping(host, int(port), self.process, loadtest.SERVER_START_TIMEOUT)
        except loadtest.LoadTestError as exc:
            output = self.log.read_text(errors="replace")
            raise BenchError(f"image stack: {exc}\n{output}") from None
        # /ping answered by one worker; every worker listens once its model is loaded
        deadline = time.monotonic() + loadtest.SERVER_START_TIMEOUT
        while listening_sockets(int(port)) < self.workers:
            if time.monotonic() > deadline or not self.alive():
                raise BenchError(f"image stack: not all {self.workers} workers listen")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        from serving.loadtest import stop_process

        stop_process(self.process)


class _AwsStack:
    """The XGBoost 1.7-1 image's stack from the container venv (``ContainerServer``)."""

    def __init__(self, model_dir: Path, workers: int, scratch: Path) -> None:
        from serving.container_server import ContainerServer

        self.server = ContainerServer(model_dir, workdir=scratch / "aws", workers=workers)
        self.url = ""

    def start(self) -> None:
        from serving.container_env import ContainerEnvError
        from serving.container_server import ContainerServerError

        try:
            self.server.start()
        except (ContainerEnvError, ContainerServerError) as exc:
            raise BenchError(f"aws stack: {exc}") from None
        self.url = self.server.url

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def alive(self) -> bool:
        return self.server.process is not None and self.server.process.poll() is None

    def stop(self) -> None:
        self.server.stop()


def prepare_model(model_arg: Path | None, scratch: Path) -> tuple[Path, str]:
    """The model directory both stacks serve, with ``code/`` as the Train step adds it."""
    from pipelines.model_build.model_code import train
    from serving.loadtest import LoadTestError, resolve_model_dir

    try:
        found, origin = resolve_model_dir(model_arg, scratch / "unpacked")
    except LoadTestError as exc:
        raise BenchError(str(exc)) from None
    model_dir = scratch / "model"
    shutil.copytree(found, model_dir, ignore=shutil.ignore_patterns("code"))
    train.copy_serving_code(model_dir)
    return model_dir, origin


def run_round(
    stack: str,
    number: int,
    url: str,
    server_pid: int,
    rates: Sequence[float],
    step_seconds: float,
    settle: float,
    scratch: Path,
) -> Round:
    step_file = scratch / f"steps-{stack}-{number}.json"
    log = scratch / f"locust-{stack}-{number}.log"
    run_time = math.ceil(ATTEMPTS * len(rates) * step_seconds + 30)  # a cap: the shape stops
    cmd = [
        *(sys.executable, "-m", "locust", "-f", LOCUSTFILES, "LocalInvocationsUser"),
        *("--headless", "--host", url, "--only-summary", "--loglevel", "WARNING"),
        *("--run-time", f"{run_time}s", "--stop-timeout", "2"),
        *("--user-rate", f"{USER_RATE:g}", "--step-rates", ",".join(f"{r:g}" for r in rates)),
        *("--step-seconds", f"{step_seconds:g}", "--step-settle", f"{settle:g}"),
        *("--step-p99-ms", f"{MAX_P99_MS:g}", "--server-pid", str(server_pid)),
        *("--step-file", str(step_file)),
    ]
    with log.open("wb") as handle:
        process = subprocess.Popen(
            cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT
        )
    try:
        code = process.wait(run_time + 60)
    except subprocess.TimeoutExpired:
        raise BenchError(f"locust did not finish ({stack}, round {number})") from None
    finally:  # also on Ctrl-C: no locust outlives the bench
        if process.poll() is None:
            process.kill()
            process.wait()
    if code not in (0, 1) or not step_file.is_file():  # 1: failed requests, judged per step
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise BenchError(f"locust exited with {code} ({stack}, round {number}):\n{tail}")
    steps = [StepResult.from_dict(d) for d in json.loads(step_file.read_text())]
    return Round(stack, number, steps)


def bench(args: argparse.Namespace) -> int:
    from serving.loadtest import STOP_SIGNALS, _raise_on_signal, check_and_warm_up

    scratch = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    stacks: dict[str, Any] = {}
    # SIGTERM/SIGHUP/SIGINT stop the run and both servers (SIGINT installed explicitly: a
    # process started in the background inherits it ignored), as serving.loadtest does
    previous = {sig: signal.signal(sig, _raise_on_signal) for sig in STOP_SIGNALS}
    try:
        model_dir, origin = prepare_model(args.model_dir, scratch)
        print(f"model: {origin}", flush=True)
        kinds = {"image": _ImageStack, "aws": _AwsStack}
        stacks = {name: kinds[name](model_dir, args.workers, scratch) for name in args.stacks}
        if "image" in stacks:
            stacks["image"].launch()  # loads its model while the aws stack starts
        for name, stack in stacks.items():
            stack.start()
            host, port = stack.url.removeprefix("http://").rsplit(":", 1)
            check_and_warm_up(host, int(port))
            print(f"{name}: {stack.url} ({args.workers} workers, pid {stack.pid})", flush=True)
        rounds: list[Round] = []
        for number in range(1, args.rounds + 1):
            order = args.stacks if number % 2 else list(reversed(args.stacks))
            for name in order:
                stack = stacks[name]
                result = run_round(
                    name,
                    number,
                    stack.url,
                    stack.pid,
                    args.rates,
                    args.step_seconds,
                    args.settle,
                    scratch,
                )
                if not stack.alive():
                    raise BenchError(f"the {name} server died during round {number}")
                rounds.append(result)
                print(
                    f"round {number} {name:<5}: held {result.held_rate:g} req/s, "
                    f"server CPU {result.cpu_ms_per_request:.3f} ms/request",
                    flush=True,
                )
        print()
        print(render(rounds, summarize(rounds), args.workers))
        return 0
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping both servers", file=sys.stderr)
        return 130
    finally:
        for stack in stacks.values():
            stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(scratch, ignore_errors=True)


def _rates(text: str) -> list[float]:
    try:
        rates = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        message = f"expected comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if not rates or any(not math.isfinite(r) or r <= 0 for r in rates) or rates != sorted(rates):
        raise argparse.ArgumentTypeError(f"expected increasing positive req/s, got {text!r}")
    return rates


def _stacks(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names or any(n not in STACKS for n in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected some of {','.join(STACKS)}, got {text!r}")
    return names


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model-dir", type=Path, default=None, help="model dir or model.tar.gz")
    parser.add_argument("--rounds", type=_positive(int), default=DEFAULT_ROUNDS)
    parser.add_argument("--rates", type=_rates, default=list(DEFAULT_RATES), help="req/s steps")
    parser.add_argument("--step-seconds", type=_positive(float), default=DEFAULT_STEP_SECONDS)
    parser.add_argument("--settle", type=float, default=DEFAULT_SETTLE_SECONDS)
    parser.add_argument("--workers", type=_positive(int), default=DEFAULT_WORKERS)
    parser.add_argument(
        "--stacks", type=_stacks, default=list(STACKS), help="image,aws (both: the comparison)"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.settle < args.step_seconds:
        parser.error(f"--settle {args.settle:g}: must be >= 0 and below --step-seconds")
    return bench(args)


if __name__ == "__main__":
    raise SystemExit(main())
