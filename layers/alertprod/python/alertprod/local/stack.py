"""The embedded stack: the SAM template's resources on moto's server, with its functions run locally.

``with EmbeddedStack() as stack:`` starts moto's server on a free localhost port, points boto3
at it (``AWS_ENDPOINT_URL`` and fake credentials in ``os.environ``, restored on exit), creates
every resource of ``infra/template.yaml`` and wires the functions to their event sources.
What moto does not do is emulated here: functions run in-process (:mod:`.lambdas`), schedules
fire on a clock the caller advances (:mod:`.schedule`), lifecycle rules expire objects on that
clock (:mod:`.lifecycle`), and an HTTP API serves a function (:mod:`.http`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from alertprod.aws.clients import AwsClients, make_clients
from alertprod.config import Resources
from alertprod.errors import ConfigError, NotFoundError
from alertprod.local.api import HttpApiRouter
from alertprod.local.http import HttpEndpoint, serve_function
from alertprod.local.lambdas import Invocation, LocalFunction, LocalLambdaService, SqsSource
from alertprod.local.lifecycle import expire_objects
from alertprod.local.resources import CREATION_ORDER, create_resource, resource_attributes
from alertprod.local.schedule import Schedule, parse_schedule, scheduled_event
from alertprod.local.template import Resolver, find_template, load_template
from alertprod.times import SURVEY_CLOCK_OFFSET_ENV

__all__ = ["EmbeddedStack", "ScheduleSource", "ACCOUNT_ID"]

#: moto's default account.
ACCOUNT_ID = "123456789012"
_FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_SESSION_TOKEN": "testing", "AWS_SECURITY_TOKEN": "testing"}


class ScheduleSource(NamedTuple):
    """A ``Schedule`` event of a function."""

    function_id: str
    event_name: str
    rule_arn: str
    schedule: Schedule


class EmbeddedStack:
    """The template's stack on one machine.

    Parameters
    ----------
    template_path : path, optional
        SAM template; default ``infra/template.yaml`` found above this package.
    stack_name : str
        Lower-case prefix of every physical name (``alertprod-local-uploadbucket``).
    host, port : str, int
        Where moto's server listens (port 0: a free port).
    region : str
        Region of every resource.
    clock_start : datetime, optional
        Initial time of :attr:`clock` (aware); default now.
    parameter_overrides : mapping, optional
        Template parameter values.
    retry_delay_s : int
        Visibility timeout given to a failed SQS message before its next delivery.
    isolate : bool, keyword-only
        Run each function in a worker process with its ``MemorySize`` as a resource limit
        (default: in this process; each ``Timeout`` is enforced either way; docs/local-stack.md).

    Notes
    -----
    :attr:`clock` runs at wall-clock speed from ``clock_start`` and jumps on
    :meth:`advance_clock`. While the stack runs, moto's S3 stamps ``LastModified`` with this
    clock, so object ages (lifecycle expiry) are ages on the stack's clock, and moto's SQS
    keeps its times on it (``SentTimestamp``, visibility timeouts, retention).
    moto keeps its state per process: stacks in one process must not overlap in time.
    """

    def __init__(self, template_path: Path | str | None = None, *, stack_name: str = "alertprod-local",
                 host: str = "127.0.0.1", port: int = 0, region: str = "us-east-1",
                 clock_start: datetime | None = None, parameter_overrides: Mapping[str, Any] | None = None,
                 retry_delay_s: int = 0, isolate: bool = False) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", stack_name):
            raise ConfigError(f"stack_name must be lower-case letters, digits and '-', got {stack_name!r}")
        if clock_start is not None and clock_start.tzinfo is None:
            raise ConfigError("clock_start must be timezone-aware")
        self.template_path = Path(template_path) if template_path else find_template()
        self.template = load_template(self.template_path)
        self.stack_name = stack_name
        self.host, self.port, self.region = host, int(port), region
        self.retry_delay_s = int(retry_delay_s)
        self.isolate = bool(isolate)
        self._parameter_overrides = dict(parameter_overrides or {})
        self._offset = (clock_start - datetime.now(UTC)) if clock_start else timedelta(0)
        self._server: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._attrs: dict[str, dict[str, str]] = {}
        self._http: list[HttpEndpoint] = []
        self._moto_patches: list[tuple[Any, str, Any]] = []
        self.endpoint_url = ""
        self.clients: AwsClients | None = None
        self.lambdas: LocalLambdaService | None = None
        self.schedules: list[ScheduleSource] = []
        self._schedule_anchor = self._schedule_cursor = self.clock

    # ------------------------------------------------------------------ lifecycle of the stack
    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start moto, set the environment, create every resource of the template."""
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        env = {**_FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint_url,
               "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region,
               SURVEY_CLOCK_OFFSET_ENV: repr(self._offset.total_seconds())}
        self._saved_env = {k: os.environ.get(k) for k in [*env, "AWS_PROFILE"]}
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update(env)
        self._patch_moto_clock()
        # moto deep-copies a whole table per transaction item; the APDB's transactions need O(items)
        from alertprod.local.dynamodb import patch_moto_transactions

        patch_moto_transactions()
        try:
            self.clients = make_clients(self.region)
            self._create_resources()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop HTTP endpoints and moto, forget moto's state, restore the environment."""
        for endpoint in self._http:
            endpoint.close()
        self._http.clear()
        if self.lambdas is not None:
            self.lambdas.close()
        if self._server is not None:
            try:  # moto's state lives in the process: reset it for the next stack
                request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
                urllib.request.urlopen(request, timeout=10).close()
            finally:
                self._server.stop()
                self._server = None
        for module, name, original in reversed(self._moto_patches):
            setattr(module, name, original)
        self._moto_patches = []
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env = {}

    def _patch_moto_clock(self) -> None:
        # moto stamps S3 objects with utcnow() from its own module; point it at our clock so that
        # LastModified (and so lifecycle age) follows advance_clock. Its SQS keeps every time
        # (SentTimestamp, visibility, delay, retention) with its own module's unix_time and
        # unix_time_millis: on our clock too, so that a function reads a message's SentTimestamp
        # on the stack's clock (the orbit refresh requested after an upload refreshes the night
        # of that time), and times stay consistent with each other.
        import moto.s3.models as s3_models
        import moto.sqs.models as sqs_models

        unix_s, unix_ms = sqs_models.unix_time, sqs_models.unix_time_millis
        patches = [
            (s3_models, "utcnow", lambda: self.clock.replace(tzinfo=None)),
            (sqs_models, "unix_time",
             lambda dt=None: self.clock.timestamp() if dt is None else unix_s(dt)),
            (sqs_models, "unix_time_millis",
             lambda dt=None: self.clock.timestamp() * 1000.0 if dt is None else unix_ms(dt)),
        ]
        for module, name, replacement in patches:
            original = getattr(module, name, None)
            if original is not None:
                setattr(module, name, replacement)
                self._moto_patches.append((module, name, original))

    # ------------------------------------------------------------------ resources
    def _physical_name(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id.lower()}"

    def _attribute(self, logical_id: str, name: str) -> Any:
        try:
            return self._attrs[logical_id][name]
        except KeyError as exc:
            raise ConfigError(f"{logical_id}.{name} is not known (yet) on the embedded stack") from exc

    def _create_resources(self) -> None:
        resources = self.template["Resources"]
        for rtype in {r["Type"] for r in resources.values()} - set(CREATION_ORDER):
            raise ConfigError(f"the embedded stack does not emulate resource type {rtype}")
        pseudo = {"AWS::Region": self.region, "AWS::AccountId": ACCOUNT_ID, "AWS::StackName": self.stack_name,
                  "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
                  "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{self.stack_name}/local"}
        self.resolver = Resolver(self.template, pseudo, self._attribute, self._parameter_overrides)
        for logical_id, spec in resources.items():
            self._attrs[logical_id] = resource_attributes(spec["Type"], self._physical_name(logical_id),
                                                          self.region, ACCOUNT_ID)
        assert self.clients is not None
        session_extra = {"cloudwatch": _client("cloudwatch", self.region),
                         "logs": _client("logs", self.region), "ses": _client("ses", self.region),
                         "region": self.region}
        functions: dict[str, LocalFunction] = {}
        for rtype in CREATION_ORDER:
            # queues without a RedrivePolicy (the dead-letter queues) come first
            ids = sorted((lid for lid, s in resources.items() if s["Type"] == rtype),
                         key=lambda lid: "RedrivePolicy" in resources[lid].get("Properties", {}))
            for logical_id in ids:
                spec = resources[logical_id]
                if "Condition" in spec and not self.resolver.condition(spec["Condition"]):
                    continue
                props = self.resolver.resolve(spec.get("Properties", {}))
                name = self._physical_name(logical_id)
                if rtype == "AWS::Serverless::Function":
                    functions[logical_id] = self._function(logical_id, name, props)
                    continue
                extra = create_resource(self.clients, rtype, name, props,
                                        arn=self._attrs[logical_id].get("Ref"), **session_extra)
                self._attrs[logical_id].update(extra)
        self.lambdas = LocalLambdaService(functions, self.clients.sqs, self.region,
                                          retry_delay_s=self.retry_delay_s, isolate=self.isolate)

    def _function(self, logical_id: str, name: str, props: Mapping[str, Any]) -> LocalFunction:
        glob = self.resolver.resolve((self.template.get("Globals") or {}).get("Function", {}))
        env = {**glob.get("Environment", {}).get("Variables", {}),
               **props.get("Environment", {}).get("Variables", {})}
        env = {k: str(v) for k, v in env.items()}
        env.update({"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
                    "POWERTOOLS_TRACE_DISABLED": "true"})  # no X-Ray daemon locally
        fn = LocalFunction(
            logical_id=logical_id, name=name, arn=self._attrs[logical_id]["Arn"],
            code_dir=(self.template_path.parent / str(props["CodeUri"])).resolve(),
            handler=str(props.get("Handler", glob.get("Handler", "app.lambda_handler"))),
            environment=env, timeout_s=float(props.get("Timeout", glob.get("Timeout", 3))),
            memory_mb=int(props.get("MemorySize", glob.get("MemorySize", 128))))
        for event_name, event in (props.get("Events") or {}).items():
            p = event.get("Properties", {})
            if event["Type"] == "SQS":
                queue_id = next(lid for lid, a in self._attrs.items() if a.get("Arn") == p["Queue"])
                fn.sqs_sources.append(SqsSource(
                    queue_id, self._attrs[queue_id]["Ref"], p["Queue"], int(p.get("BatchSize", 10)),
                    "ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or [])))
            elif event["Type"] in ("Schedule", "ScheduleV2"):
                expression = p.get("Schedule") or p.get("ScheduleExpression")
                if p.get("Enabled", True) is False or p.get("State") == "DISABLED":
                    continue
                rule = f"{name}-{event_name}".lower()[:64]
                rule_arn = _client("events", self.region).put_rule(
                    Name=rule, ScheduleExpression=expression, State="ENABLED")["RuleArn"]
                self.schedules.append(ScheduleSource(logical_id, event_name, rule_arn, parse_schedule(expression)))
            elif event["Type"] not in ("HttpApi", "Api"):  # HTTP events: served by serve_http
                raise ConfigError(f"{logical_id}.{event_name}: event type {event['Type']} is not emulated")
        return fn

    @property
    def resources(self) -> Resources:
        """The deployment's names, as the template hands them to the functions."""
        env = next(iter(self.lambdas.functions.values())).environment if self.lambdas and self.lambdas.functions else {}
        return Resources.from_env(env)

    def physical_id(self, logical_id: str) -> str:
        """What ``Ref`` of a template resource gives on this stack (name, ARN or queue URL)."""
        if logical_id not in self._attrs:
            raise NotFoundError(f"no resource {logical_id!r} in the template")
        return str(self._attrs[logical_id]["Ref"])

    def physical_ids(self, resource_type: str) -> list[str]:
        """``Ref`` of every resource of ``resource_type`` this stack created (a resource whose
        ``Condition`` is false is left out, as CloudFormation leaves it out)."""
        resources = self.template["Resources"]
        return [self.physical_id(lid) for lid, spec in resources.items()
                if spec["Type"] == resource_type
                and ("Condition" not in spec or self.resolver.condition(spec["Condition"]))]

    def attribute(self, logical_id: str, name: str) -> str:
        """What ``Fn::GetAtt`` of a template resource gives on this stack."""
        return str(self._attribute(logical_id, name))

    # ------------------------------------------------------------------ functions
    def invoke(self, function_id: str, event: Any) -> Any:
        """Invoke a function synchronously with ``event``."""
        return self._lambdas().invoke(function_id, event)

    def run_until_idle(self, timeout_s: float = 60.0) -> int:
        """Deliver SQS messages to their functions until every source queue is drained."""
        return self._lambdas().run_until_idle(timeout_s)

    def run_forever(self, stop_event: threading.Event, *, idle_sleep_s: float = 0.25) -> None:
        """Deliver SQS messages and fire schedules as the clock passes them, until ``stop_event``."""
        lambdas = self._lambdas()
        while not stop_event.is_set():
            self.advance_clock(to=self.clock)
            if lambdas.poll_once() == 0:
                stop_event.wait(idle_sleep_s)

    @property
    def invocations(self) -> list[Invocation]:
        """The invocation log, oldest first."""
        return self._lambdas().log

    def _lambdas(self) -> LocalLambdaService:
        if self.lambdas is None:
            raise ConfigError("the stack is not running; use it as a context manager")
        return self.lambdas

    # ------------------------------------------------------------------ clock, schedules, lifecycle
    @property
    def _clock_offset(self) -> timedelta:
        return self._offset

    @_clock_offset.setter
    def _clock_offset(self, value: timedelta) -> None:
        # the functions' survey clock follows the stack's (alertprod.times.survey_clock_offset_s)
        self._offset = value
        if self._server is not None:
            os.environ[SURVEY_CLOCK_OFFSET_ENV] = repr(value.total_seconds())

    @property
    def clock(self) -> datetime:
        """The stack's current time (aware, UTC)."""
        return datetime.now(UTC) + self._clock_offset

    def advance_clock(self, to: datetime | None = None, *, by: timedelta | None = None) -> list[Invocation]:
        """Move the clock forward, firing every schedule crossed, in time order.

        Returns
        -------
        list of Invocation
            One per firing (the scheduled function's invocation); handler errors are logged
            there, not raised, as EventBridge would retry them on its own.
        """
        if (to is None) == (by is None):
            raise ConfigError("advance_clock takes exactly one of to= and by=")
        start = self._schedule_cursor  # schedules are fired up to here
        target = to if to is not None else self.clock + by  # type: ignore[operator]
        if target.tzinfo is None:
            raise ConfigError("to must be timezone-aware")
        firings = sorted((t, s) for s in self.schedules
                         for t in s.schedule.fire_times(start, target, anchor=self._schedule_anchor))
        fired: list[Invocation] = []
        for when, source in firings:
            self._clock_offset = when - datetime.now(UTC)
            event = scheduled_event(source.rule_arn, when, account=ACCOUNT_ID, region=self.region)
            with contextlib.suppress(Exception):  # recorded in the invocation log
                self.invoke(source.function_id, event)
            fired.append(self.invocations[-1])
        if target > self.clock:
            self._clock_offset = target - datetime.now(UTC)
        self._schedule_cursor = max(start, target)
        return fired

    def apply_lifecycle(self, now: datetime | None = None) -> dict[str, list[str]]:
        """Expire objects per each bucket's ``LifecycleConfiguration`` at ``now`` (default: clock).

        Returns
        -------
        dict
            Deleted keys by bucket logical id.
        """
        now = now or self.clock
        out: dict[str, list[str]] = {}
        for logical_id, spec in self.template["Resources"].items():
            if spec["Type"] != "AWS::S3::Bucket":
                continue
            props = self.resolver.resolve(spec.get("Properties", {}))
            rules = props.get("LifecycleConfiguration", {}).get("Rules", [])
            if rules:
                out[logical_id] = expire_objects(self.clients.s3, self.physical_id(logical_id), rules, now)
        return out

    # ------------------------------------------------------------------ HTTP
    def serve_api(self, api_logical_id: str = "HttpApi", host: str = "127.0.0.1",
                  port: int = 0) -> HttpEndpoint:
        """Serve the template's HTTP API: its routes, with its Lambda authorizer in front
        (:class:`~alertprod.local.api.HttpApiRouter`); closed with the stack."""
        router = HttpApiRouter(self.template, api_logical_id, self.invoke)
        endpoint = serve_function(router, host, port)
        self._http.append(endpoint)
        return endpoint

    def serve_http(self, function_logical_id: str, host: str = "127.0.0.1", port: int = 0) -> HttpEndpoint:
        """Serve a function as an API Gateway HTTP API (payload v2); closed with the stack."""
        self._lambdas().function(function_logical_id)
        endpoint = serve_function(lambda event: self.invoke(function_logical_id, event), host, port)
        self._http.append(endpoint)
        return endpoint


def _client(service: str, region: str) -> Any:
    import boto3

    return boto3.session.Session(region_name=region).client(service)
