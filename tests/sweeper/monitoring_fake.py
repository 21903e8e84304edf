"""SageMaker's monitoring-schedule API, which moto 5 lacks, answered in-process for one client.

Attached to a (moto) SageMaker client's events (``client.meta.events``), or to a boto3
session's (``session.events``: every client made from it afterwards, until :meth:`detach`),
through botocore's ``before-call`` event, where a handler's answer replaces the HTTP call (what
botocore's Stubber does): ListMonitoringSchedules,
DescribeMonitoringSchedule, CreateMonitoringSchedule and DeleteMonitoringSchedule. Every request
is validated against botocore's whole input shape (tests/botocore_shapes.py) and every answer
against the output shape; a missing schedule is SageMaker's ``ResourceNotFound``. ``calls``
records every SageMaker operation the client made, in order (moto's too), so a test can check
that schedules go before the endpoint. Job definitions are moto's own.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from botocore.awsrequest import AWSResponse

from tests.botocore_shapes import validate, validate_shape

OPERATIONS = (
    "ListMonitoringSchedules",
    "DescribeMonitoringSchedule",
    "CreateMonitoringSchedule",
    "DeleteMonitoringSchedule",
)
NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)


class MonitoringSchedules:
    def __init__(
        self, events: Any, region: str = "us-east-1", account: str = "123456789012"
    ) -> None:
        self.region, self.account, self._events = region, account, events
        self.schedules: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        events.register("provide-client-params.sagemaker", self._record)
        for operation in OPERATIONS:
            events.register(f"before-call.sagemaker.{operation}", self._answer)

    def detach(self) -> None:
        self._events.unregister("provide-client-params.sagemaker", self._record)
        for operation in OPERATIONS:
            self._events.unregister(f"before-call.sagemaker.{operation}", self._answer)

    def _record(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def _arn(self, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:monitoring-schedule/{name}"

    def _answer(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[Any, Any]:
        request = json.loads(params.get("body") or b"{}")
        assert validate("sagemaker", model.name, request) == [], (model.name, request)
        status, body = getattr(self, f"_{model.name}")(request)
        if status == 200 and model.output_shape is not None:
            problems = validate_shape("sagemaker", model.output_shape.name, body)
            assert problems == [], (model.name, problems)
        return AWSResponse(None, status, {}, None), body

    @staticmethod
    def _not_found(name: str) -> tuple[int, dict[str, Any]]:
        error = {"Code": "ResourceNotFound", "Message": f"Monitoring schedule {name} not found"}
        return 400, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}

    def _CreateMonitoringSchedule(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = request["MonitoringScheduleName"]
        self.schedules[name] = {
            "MonitoringScheduleArn": self._arn(name),
            "MonitoringScheduleName": name,
            "MonitoringScheduleStatus": "Scheduled",
            "MonitoringType": request["MonitoringScheduleConfig"]["MonitoringType"],
            "CreationTime": NOW,
            "LastModifiedTime": NOW,
            "MonitoringScheduleConfig": request["MonitoringScheduleConfig"],
            "EndpointName": request.get("EndpointName", ""),
        }
        return 200, {"MonitoringScheduleArn": self._arn(name)}

    def _DescribeMonitoringSchedule(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = request["MonitoringScheduleName"]
        if name not in self.schedules:
            return self._not_found(name)
        found = dict(self.schedules[name])
        found.pop("EndpointName")
        return 200, found

    def _DeleteMonitoringSchedule(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = request["MonitoringScheduleName"]
        if self.schedules.pop(name, None) is None:
            return self._not_found(name)
        return 200, {}

    def _ListMonitoringSchedules(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        contains = request.get("NameContains", "")
        summaries = [
            {
                "MonitoringScheduleName": s["MonitoringScheduleName"],
                "MonitoringScheduleArn": s["MonitoringScheduleArn"],
                "CreationTime": s["CreationTime"],
                "LastModifiedTime": s["LastModifiedTime"],
                "MonitoringScheduleStatus": s["MonitoringScheduleStatus"],
                "MonitoringType": s["MonitoringType"],
            }
            for name, s in sorted(self.schedules.items())
            if contains in name
        ]
        return 200, {"MonitoringScheduleSummaries": summaries}

    def add(self, name: str, endpoint: str, definition: str, kind: str = "DataQuality") -> None:
        """A schedule as monitor_sync creates it (``EndpointName`` is for listings only)."""
        self._CreateMonitoringSchedule(
            {
                "MonitoringScheduleName": name,
                "MonitoringScheduleConfig": {
                    "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
                    "MonitoringJobDefinitionName": definition,
                    "MonitoringType": kind,
                },
            }
        )
        self.schedules[name]["EndpointName"] = endpoint
