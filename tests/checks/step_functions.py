"""Step Functions definitions of a synthesized assembly, checked with AWS's own models.

* :func:`state_machines` renders every ``AWS::StepFunctions::StateMachine`` of every template into
  plain ASL JSON: the ``DefinitionString`` is an ``Fn::Join`` of text and tokens (role, function,
  topic ARNs...), which become placeholder values of the right form for the referenced resource
  (an ARN for ``Fn::GetAtt ... Arn``, a topic ARN for ``Ref`` of a topic, and so on).
* :func:`run_asl_validator` runs the pinned npm ``asl-validator`` over rendered definitions.
* :func:`check_task` validates a Task state's service-integration parameters against botocore's
  model of the API it calls (``tests/botocore_shapes.py``): ``arn:aws:states:::aws-sdk:<service>:
  <action>`` and the optimised integrations (``sns:publish``, ``sagemaker:createEndpoint``...).
  Step Functions specifics: a key ending in ``.$`` is a JSONPath or intrinsic function whose value
  is known at run time (an intrinsic's result type is still checked against the member's type);
  SDK service names map to botocore's (``sfn`` -> ``stepfunctions``); actions are the camelCase
  operation name; ``.sync``/``.waitForTaskToken`` suffixes are the integration pattern.

Run as ``python -m tests.checks.step_functions <cdk.out>`` (``make lint``): exits non-zero on any
problem, printing one line each.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
from botocore.model import Shape

from tests.botocore_shapes import Runtime, service_model, validate

REPO = Path(__file__).resolve().parents[2]
ASL_VALIDATOR = REPO / "node_modules" / ".bin" / "asl-validator"

PLACEHOLDER_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


# ------------------------------------------------------------------------------------------------
# Rendering CloudFormation intrinsics with placeholder values


@dataclass(frozen=True)
class StackContext:
    template: dict[str, Any]
    account: str
    region: str
    stack_name: str
    partition: str = "aws"
    # Every stack of the assembly by name: Fn::GetStackOutput renders the other stack's output.
    stacks: dict[str, StackContext] = field(default_factory=dict, compare=False, repr=False)

    def name_of(self, logical_id: str) -> str:
        """The resource's literal physical name when the template sets one, else its logical id."""
        resource = self.template["Resources"][logical_id]
        props = resource.get("Properties", {})
        kind = resource["Type"].split("::")[-1]
        for key in (f"{kind}Name", "Name", "FunctionName", "RoleName", "TopicName", "QueueName"):
            if isinstance(props.get(key), str):
                return str(props[key])
        return logical_id

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        region, account = (self.region, self.account) if regional else ("", self.account)
        return f"arn:{self.partition}:{service}:{region}:{account}:{resource}"

    def ref(self, logical_id: str) -> str:
        pseudo = {
            "AWS::Partition": self.partition,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
        }
        if logical_id in pseudo:
            return pseudo[logical_id]
        if logical_id not in self.template["Resources"]:
            raise ValueError(f"cannot render Ref {logical_id!r}: not a resource of the template")
        type_ = self.template["Resources"][logical_id]["Type"]
        name = self.name_of(logical_id)
        if type_ == "AWS::SNS::Topic":
            return self.arn("sns", name)
        if type_ == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{name}"
        if type_ == "AWS::StepFunctions::StateMachine":
            return self.arn("states", f"stateMachine:{name}")
        if type_ == "AWS::KMS::Key":
            return PLACEHOLDER_KEY_ID
        if type_ == "AWS::S3::Bucket":
            return name.lower()
        return name

    def get_att(self, logical_id: str, attribute: str) -> str:
        if logical_id not in self.template["Resources"]:
            raise ValueError(f"cannot render GetAtt {logical_id}.{attribute}: not a resource")
        type_ = self.template["Resources"][logical_id]["Type"]
        name = self.name_of(logical_id)
        known: dict[tuple[str, str], str] = {
            ("AWS::Lambda::Function", "Arn"): self.arn("lambda", f"function:{name}"),
            ("AWS::IAM::Role", "Arn"): self.arn("iam", f"role/{name}", regional=False),
            ("AWS::SNS::Topic", "TopicArn"): self.arn("sns", name),
            ("AWS::SNS::Topic", "TopicName"): name,
            ("AWS::SQS::Queue", "Arn"): self.arn("sqs", name),
            ("AWS::SQS::Queue", "QueueName"): name,
            ("AWS::StepFunctions::StateMachine", "Arn"): self.arn("states", f"stateMachine:{name}"),
            ("AWS::StepFunctions::StateMachine", "Name"): name,
            ("AWS::KMS::Key", "Arn"): self.arn("kms", f"key/{PLACEHOLDER_KEY_ID}"),
            ("AWS::S3::Bucket", "Arn"): f"arn:{self.partition}:s3:::{name.lower()}",
            ("AWS::Logs::LogGroup", "Arn"): self.arn("logs", f"log-group:{name}:*"),
            ("AWS::Events::Rule", "Arn"): self.arn("events", f"rule/{name}"),
            ("AWS::DynamoDB::Table", "Arn"): self.arn("dynamodb", f"table/{name}"),
        }
        if (type_, attribute) in known:
            return known[(type_, attribute)]
        if attribute.endswith("Arn"):
            service = type_.split("::")[1].lower()
            return self.arn(service, f"{type_.split('::')[2].lower()}/{name}")
        if attribute.endswith("Name"):
            return name
        raise ValueError(f"cannot render GetAtt {logical_id}.{attribute} of a {type_}")

    def render(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.render(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(str(self.render(part)) for part in self.render(parts))
            if key == "Fn::Select":
                index, items = arg
                return self.render(items)[int(self.render(index))]
            if key == "Fn::Split":
                separator, text = arg
                return str(self.render(text)).split(separator)
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                return self._sub(text, {k: self.render(v) for k, v in variables.items()})
            if key == "Fn::GetStackOutput":
                other = self.stacks[self.render(arg["StackName"])]
                return other.render(other.template["Outputs"][arg["OutputName"]]["Value"])
            if key.startswith("Fn::"):
                raise ValueError(f"cannot render {key}")
        return {key: self.render(value) for key, value in node.items()}

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                return self.get_att(*name.split(".", 1))
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", one, text)


@dataclass(frozen=True)
class StateMachine:
    template_file: Path
    logical_id: str
    definition: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.template_file.parent.name}/{self.template_file.stem}/{self.logical_id}"


def _stack_contexts(assembly_dir: Path) -> list[tuple[Path, StackContext]]:
    """(template file, context) for every stack of every nested assembly under ``assembly_dir``."""
    found = []
    by_name: dict[str, StackContext] = {}
    for manifest_file in sorted(assembly_dir.glob("assembly-*/manifest.json")):
        manifest = json.loads(manifest_file.read_text())
        for artifact in manifest["artifacts"].values():
            if artifact.get("type") != "aws:cloudformation:stack":
                continue
            account, region = artifact["environment"].removeprefix("aws://").split("/")
            template_file = manifest_file.parent / artifact["properties"]["templateFile"]
            template = json.loads(template_file.read_text())
            name = artifact["properties"].get("stackName", template_file.stem)
            context = StackContext(template, account, region, name, stacks=by_name)
            by_name[name] = context
            found.append((template_file, context))
    return found


def state_machines(assembly_dir: Path) -> list[StateMachine]:
    """Every state machine of the assembly, its definition rendered to plain ASL."""
    found = []
    for template_file, context in _stack_contexts(assembly_dir):
        for logical_id, resource in context.template["Resources"].items():
            if resource["Type"] != "AWS::StepFunctions::StateMachine":
                continue
            props = resource["Properties"]
            if "DefinitionS3Location" in props:
                raise ValueError(f"{logical_id}: definitions in S3 are not rendered")
            definition = props.get("Definition") or json.loads(
                str(context.render(props["DefinitionString"]))
            )
            substitutions = context.render(props.get("DefinitionSubstitutions", {}))
            if substitutions:
                text = json.dumps(context.render(definition))
                for key, value in substitutions.items():
                    text = text.replace("${" + key + "}", str(value))
                definition = json.loads(text)
            found.append(StateMachine(template_file, logical_id, context.render(definition)))
    return found


def states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, including those of Parallel branches and Map processors, depth first."""
    for name, state in definition["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from states(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from states(state[key])


# ------------------------------------------------------------------------------------------------
# asl-validator


def run_asl_validator(definitions: dict[str, dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """Run the pinned asl-validator over named definitions (one file each)."""
    if not ASL_VALIDATOR.exists():
        raise FileNotFoundError(f"{ASL_VALIDATOR} missing: run make install (npm ci)")
    with tempfile.TemporaryDirectory(prefix="asl-") as tmp:
        args = []
        for i, (name, definition) in enumerate(sorted(definitions.items())):
            path = Path(tmp) / f"{i:03d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.asl.json"
            path.write_text(json.dumps(definition, indent=1))
            args += ["--json-path", str(path)]
        return subprocess.run(
            [str(ASL_VALIDATOR), *args], capture_output=True, text=True, timeout=120
        )


# ------------------------------------------------------------------------------------------------
# Service-integration parameters against botocore


# Step Functions SDK service names that are not botocore's name without hyphens.
_SDK_ALIASES = {"sfn": "stepfunctions", "eventbridge": "events", "cloudwatchlogs": "logs"}
# Optimised integrations named differently from the botocore service.
_OPTIMISED_ALIASES = {"states": "stepfunctions", "bedrock": "bedrock-runtime"}
# Optimised integrations that serialize a JSON object given for a string/blob member.
_JSON_SERIALIZED = {
    ("sns", "Publish"): {"Message"},
    ("sqs", "SendMessage"): {"MessageBody"},
    ("lambda", "Invoke"): {"Payload"},
    ("stepfunctions", "StartExecution"): {"Input"},
    ("events", "PutEvents"): {"Detail"},
}
_PATTERNS = (".sync:2", ".sync", ".waitForTaskToken")
# Typed literals for context-object paths, in the longest form Step Functions gives them (names
# up to 80 characters), so the member they feed is checked: type, length, pattern.
_LONGEST_NAME = "e" * 40 + "-" + "0" * 39
_STATES_ARN = "arn:aws:states:us-east-1:111111111111"
CONTEXT_LITERALS: dict[str, Any] = {
    "$$.Execution.Name": _LONGEST_NAME,
    "$$.Execution.Id": f"{_STATES_ARN}:execution:{'s' * 80}:{_LONGEST_NAME}",
    "$$.StateMachine.Name": "s" * 80,
    "$$.StateMachine.Id": f"{_STATES_ARN}:stateMachine:{'s' * 80}",
    "$$.Execution.StartTime": "2026-11-30T02:00:00.000Z",
    "$$.State.EnteredTime": "2026-11-30T02:00:00.000Z",
    "$$.State.Name": "S" * 80,
    "$$.State.RetryCount": 0,
    "$$.Task.Token": "t" * 1024,
}
_STRING_INTRINSICS = (
    "States.Format(",
    "States.JsonToString(",
    "States.UUID(",
    "States.Base64Encode(",
    "States.Base64Decode(",
    "States.Hash(",
)
_NUMBER_INTRINSICS = ("States.MathAdd(", "States.MathRandom(", "States.ArrayLength(")
_LIST_INTRINSICS = ("States.Array(", "States.ArrayPartition(", "States.ArrayRange(")


@functools.cache
def _botocore_services() -> dict[str, str]:
    names = botocore.session.get_session().get_available_services()
    return {name.replace("-", ""): name for name in names}


def botocore_service(sdk_name: str, *, optimised: bool) -> str:
    """Step Functions' service name in an integration ARN -> botocore's service name."""
    aliases = _OPTIMISED_ALIASES if optimised else _SDK_ALIASES
    if sdk_name in aliases:
        return aliases[sdk_name]
    if sdk_name != sdk_name.lower() or sdk_name not in _botocore_services():
        raise ValueError(f"no botocore service for Step Functions service name {sdk_name!r}")
    return _botocore_services()[sdk_name]


@dataclass(frozen=True)
class Integration:
    service: str  # botocore
    operation: str  # botocore (PascalCase)
    optimised: bool


_INTEGRATION = re.compile(
    r"^arn:aws[a-z-]*:states:::(?P<sdk>aws-sdk:)?(?P<svc>[a-z0-9-]+):(?P<act>.+)$"
)
_FUNCTION = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+$")
_ACTIVITY = re.compile(r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:activity:.+$")


def integration(resource: str) -> Integration | None:
    """The API a Task resource calls; None for a Lambda function or activity ARN (their
    parameters are a free-form payload). ValueError for anything unrecognised."""
    if _FUNCTION.match(resource) or _ACTIVITY.match(resource):
        return None
    match = _INTEGRATION.match(resource)
    if match is None:
        raise ValueError(f"not a Step Functions task resource: {resource}")
    optimised = match["sdk"] is None
    action = match["act"]
    if optimised:
        for suffix in _PATTERNS:
            action = action.removesuffix(suffix)
    if not re.fullmatch(r"[a-z][A-Za-z0-9]*", action):
        raise ValueError(f"{resource}: the action must be the camelCase API operation name")
    service = botocore_service(match["svc"], optimised=optimised)
    operation = action[0].upper() + action[1:]
    model = service_model(service)
    if operation not in model.operation_names:
        raise ValueError(f"{resource}: {service} has no operation {operation}")
    return Integration(service, operation, optimised)


@dataclass(frozen=True)
class _Dynamic:
    """A ``.$`` value: a JSONPath or an intrinsic function, resolved at run time."""

    expression: str


def _mark_dynamic(node: Any) -> Any:
    if isinstance(node, list):
        return [_mark_dynamic(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.endswith(".$"):
            out[key[:-2]] = _Dynamic(str(value))
        else:
            out[key] = _mark_dynamic(value)
    return out


def _literal(value: Any, shape: Shape) -> Any:
    """A ``.$`` value as botocore_shapes sees it: a JSONPath result is :class:`Runtime` (any
    value); an intrinsic function's result has a known type, checked against the member's."""
    if not isinstance(value, _Dynamic):
        return value
    expression, kind = value.expression.strip(), shape.type_name
    if expression.startswith(_STRING_INTRINSICS):
        return Runtime(expression) if kind in ("string", "blob") else value
    if expression.startswith(_NUMBER_INTRINSICS):
        return Runtime(expression) if kind in ("integer", "long", "double", "float") else value
    if expression.startswith(_LIST_INTRINSICS):
        return Runtime(expression) if kind == "list" else value
    if expression in CONTEXT_LITERALS:  # the context object: its values have a known form
        return CONTEXT_LITERALS[expression]
    return Runtime(expression)  # a JSONPath into the state's input: decided by that input


def _strip_dynamic(node: Any) -> Any:
    if isinstance(node, _Dynamic):
        return "<run time>"
    if isinstance(node, list):
        return [_strip_dynamic(item) for item in node]
    if isinstance(node, dict):
        return {key: _strip_dynamic(value) for key, value in node.items()}
    return node


def check_task(state: dict[str, Any]) -> list[str]:
    """Problems of one Task state's parameters as input of the API it calls ([] when valid)."""
    target = integration(state["Resource"])
    if target is None:
        return []
    if "Arguments" in state:
        raise ValueError("JSONata Arguments are not checked: use JSONPath Parameters")
    params = _mark_dynamic(state.get("Parameters", {}))
    if not target.optimised:
        shape = service_model(target.service)
        params = _sdk_member_names(params, shape.operation_model(target.operation).input_shape)
    if target.optimised:
        serialized = _JSON_SERIALIZED.get((target.service, target.operation), set())
        params = _serialize_members(params, serialized)
    return validate(target.service, target.operation, params, literal=_literal)


def _sdk_member_names(node: Any, shape: Shape | None) -> Any:
    """AWS SDK integrations take parameters in PascalCase even where the API's members are
    camelCase (Step Functions' ``StateMachineArn`` for ``stateMachineArn``: "Learning to use AWS
    service SDK integrations", API naming conventions); map them back to the model's names."""
    if shape is None or isinstance(node, _Dynamic):
        return node
    if isinstance(node, list):
        member = getattr(shape, "member", None)
        return [_sdk_member_names(item, member) for item in node]
    if not isinstance(node, dict) or not hasattr(shape, "members"):
        return node
    members = shape.members
    out = {}
    for key, value in node.items():
        name = key
        if key not in members:
            camel = key[:1].lower() + key[1:]
            name = camel if camel in members else key
        out[name] = _sdk_member_names(value, members.get(name))
    return out


def _serialize_members(node: Any, members: set[str]) -> Any:
    """Members Step Functions serializes to JSON text when given an object (SNS Message...)."""
    if isinstance(node, list):
        return [_serialize_members(item, members) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: json.dumps(_strip_dynamic(value))
        if key in members and isinstance(value, dict | list)
        else _serialize_members(value, members)
        for key, value in node.items()
    }


def check_assembly(assembly_dir: Path) -> tuple[list[StateMachine], int, list[str]]:
    """(state machines, number of API-integration tasks checked, problems)."""
    machines = state_machines(assembly_dir)
    problems: list[str] = []
    checked = 0
    for machine in machines:
        for name, state in states(machine.definition):
            if state["Type"] != "Task":
                continue
            try:
                errors = check_task(state)
                checked += integration(state["Resource"]) is not None
            except ValueError as error:
                errors = [str(error)]
            problems += [f"{machine.label} state {name!r}: {error}" for error in errors]
    if machines:
        result = run_asl_validator({m.label: m.definition for m in machines})
        if result.returncode != 0:
            problems.append(f"asl-validator: {(result.stdout + result.stderr).strip()}")
    return machines, checked, problems


def main(argv: list[str]) -> int:
    assembly_dir = Path(argv[0] if argv else "cdk.out")
    machines, checked, problems = check_assembly(assembly_dir)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(
        f"step functions: {len(machines)} definition(s) valid ASL per asl-validator, "
        f"{checked} service-integration task(s) checked against botocore, "
        f"{len(problems)} problem(s)"
    )
    return 1 if problems or not machines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
