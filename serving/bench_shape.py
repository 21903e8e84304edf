# mypy: disable-error-code="untyped-decorator"
"""Locust side of ``make bench-serving``: a stepped offered rate, judged step by step.

Loaded next to ``serving/locustfile.py`` (``locust -f serving/locustfile.py,serving/bench_shape.py
LocalInvocationsUser``), so both stacks get the same user. Each step holds ``users =
round(rate * 1.01 / --user-rate)`` users (the locustfile's open-loop pacing) for
``--step-seconds``; the first ``--step-settle`` seconds of a step (spawning) are left out of its
window. At every step boundary the step just finished is judged with
:func:`serving.bench.judge_step` (p99 above ``--step-p99-ms``, any failure, or under 90% of
the offered rate completed: a miss); :func:`serving.bench.next_action` then reruns a missed
rate once, goes on, or stops (two rates in a row missed twice, or after the last rate). The
server's CPU (its process tree, ``--server-pid``) and locust's own are sampled at every
boundary. ``--step-file`` receives the steps as JSON when the test stops.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from locust import LoadTestShape, events

from serving.bench import StepResult, judge_step, next_action
from serving.processes import tree_cpu_seconds


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--step-rates",
        default="",
        include_in_web_ui=False,
        help="comma-separated offered req/s, one step each",
    )
    parser.add_argument("--step-seconds", type=float, default=5.0, include_in_web_ui=False)
    parser.add_argument("--step-settle", type=float, default=1.0, include_in_web_ui=False)
    parser.add_argument("--step-p99-ms", type=float, default=10.0, include_in_web_ui=False)
    parser.add_argument("--server-pid", type=int, default=0, include_in_web_ui=False)
    parser.add_argument("--step-file", default="", include_in_web_ui=False)  # fmt: skip


class _Recorder:
    """(completion time, response time ms, failed) of every request of the run."""

    def __init__(self) -> None:
        self.records: list[tuple[float, float, bool]] = []

    def add(self, response_time: float, failed: bool) -> None:
        self.records.append((time.monotonic(), response_time, failed))


RECORDS = _Recorder()


@events.request.add_listener
def _on_request(response_time: float, exception: Any = None, **_kwargs: Any) -> None:
    RECORDS.add(response_time, exception is not None)


class SteppedRates(LoadTestShape):
    """Steps through ``--step-rates`` as :func:`serving.bench.next_action` says."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.results: list[StepResult] = []
        self._step = -1
        self._step_started = 0.0
        self._cpu_mark: tuple[float, float, int] = (0.0, 0.0, 0)
        self._stopped = False

    def _options(self) -> Any:
        return self.runner.environment.parsed_options if self.runner else None

    def _sample(self) -> tuple[float, float, int]:
        options = self._options()
        server = tree_cpu_seconds(options.server_pid) if options and options.server_pid else 0.0
        own = os.times()
        return server, own.user + own.system, len(RECORDS.records)

    def _close_step(self, now: float) -> str:
        """Judge the step that just ended; what comes next (retry, next or stop)."""
        options = self._options()
        rates = [float(r) for r in options.step_rates.split(",") if r.strip()]
        server, own, count = self._sample()
        start_server, start_own, start_count = self._cpu_mark
        window_start = self._step_started + options.step_settle
        result = judge_step(
            rate=rates[self._step],
            offered=self._users(rates[self._step]) * options.user_rate,
            records=[r for r in RECORDS.records[start_count:] if r[0] >= window_start],
            window=max(now - window_start, 1e-9),
            requests=count - start_count,
            server_cpu=server - start_server,
            locust_cpu=own - start_own,
            max_p99_ms=options.step_p99_ms,
        )
        self.results.append(result)
        self._write()
        return next_action(self.results)

    def _users(self, rate: float) -> int:
        options = self._options()
        return max(1, round(rate * 1.01 / float(options.user_rate)))

    def _write(self) -> None:
        options = self._options()
        if options and options.step_file:
            Path(options.step_file).write_text(json.dumps([r.as_dict() for r in self.results]))

    def tick(self) -> tuple[int, float] | None:
        options = self._options()
        if options is None or self._stopped:
            return None
        rates = [float(r) for r in options.step_rates.split(",") if r.strip()]
        now = time.monotonic()
        if self._step < 0 or now - self._step_started >= options.step_seconds:
            action = self._close_step(now) if self._step >= 0 else "next"
            if action == "stop":
                self._stopped = True
                return None
            if action == "next":
                self._step += 1
            if self._step >= len(rates):
                self._stopped = True
                return None
            self._step_started = now
            self._cpu_mark = self._sample()
        users = self._users(rates[self._step])
        return users, float(max(users, 100) * 4)
