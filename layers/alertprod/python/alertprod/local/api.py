"""The template's HTTP API on the embedded stack: its routes, and its Lambda authorizer in front.

API Gateway matches a request to a route (``METHOD /path`` with ``{name}`` and greedy
``{proxy+}`` parameters; the most specific route wins), runs the API's default authorizer
unless the route says ``Authorizer: NONE`` — 401 when the identity header is missing, 403 when
the authorizer says no, otherwise its ``context`` reaches the function as
``requestContext.authorizer.lambda`` — and invokes the route's function with the payload v2
event. :class:`HttpApiRouter` does the same from the template's own ``AWS::Serverless::HttpApi``
and the functions' ``HttpApi`` events, so the local API cannot drift from the deployed one.
Written here because no library emulates API Gateway's routing and authorizers for a SAM
template (moto's apigatewayv2 stores APIs but does not serve them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from alertprod.errors import ConfigError

__all__ = ["HttpApiRouter", "Route"]


@dataclass(frozen=True)
class Route:
    """One route of the API: method (``ANY`` matches all), path template, function, auth."""

    method: str
    path: str
    function_id: str
    authorize: bool

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route takes the request, else None."""
        if self.method not in ("ANY", method.upper()):
            return None
        pattern = "^"
        for part in re.split(r"(\{[^}]+\})", self.path):
            if part.startswith("{") and part.endswith("+}"):
                pattern += f"(?P<{part[1:-2]}>.+)"
            elif part.startswith("{"):
                pattern += f"(?P<{part[1:-1]}>[^/]+)"
            else:
                pattern += re.escape(part)
        found = re.match(pattern + "$", path)
        return None if found is None else found.groupdict()

    @property
    def specificity(self) -> tuple[int, int]:
        """Routes with more literal characters, then fewer greedy parameters, win."""
        literal = len(re.sub(r"\{[^}]+\}", "", self.path))
        return literal, -self.path.count("+}")


def _json(status: int, message: str) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"},
            "body": json.dumps({"message": message})}


class HttpApiRouter:
    """Routes and authorizer of one ``AWS::Serverless::HttpApi`` of a template.

    Parameters
    ----------
    template : Mapping
        The parsed SAM template.
    api_id : str
        Logical id of the HttpApi resource.
    invoke : callable
        ``invoke(function_logical_id, event) -> response`` (the stack's Lambda service).
    """

    def __init__(self, template: Mapping[str, Any], api_id: str,
                 invoke: Callable[[str, Any], Any]) -> None:
        resources = template.get("Resources", {})
        api = resources.get(api_id)
        if api is None or api.get("Type") != "AWS::Serverless::HttpApi":
            raise ConfigError(f"{api_id!r} is not an AWS::Serverless::HttpApi of the template")
        auth = (api.get("Properties") or {}).get("Auth") or {}
        default = auth.get("DefaultAuthorizer")
        self.authorizer_id: str | None = None
        self.identity_headers: list[str] = []
        if default:
            spec = (auth.get("Authorizers") or {}).get(default) or {}
            arn = spec.get("FunctionArn") or {}
            self.authorizer_id = (arn.get("Fn::GetAtt") or [None])[0]
            self.identity_headers = [h.lower() for h in
                                     ((spec.get("Identity") or {}).get("Headers") or [])]
            if not self.authorizer_id:
                raise ConfigError(f"{api_id}: authorizer {default!r} names no function")
        self.routes: list[Route] = []
        for logical_id, spec in resources.items():
            if spec.get("Type") != "AWS::Serverless::Function":
                continue
            for event in ((spec.get("Properties") or {}).get("Events") or {}).values():
                props = event.get("Properties") or {}
                if event.get("Type") != "HttpApi" or props.get("ApiId") != {"Ref": api_id}:
                    continue
                route_auth = (props.get("Auth") or {}).get("Authorizer")
                self.routes.append(Route(str(props.get("Method", "ANY")).upper(), props["Path"],
                                         logical_id, bool(default) and route_auth != "NONE"))
        self.routes.sort(key=lambda r: r.specificity, reverse=True)
        self._invoke = invoke

    def __call__(self, event: dict[str, Any]) -> Any:
        """Handle one payload-v2 request event as API Gateway would."""
        method = event["requestContext"]["http"]["method"]
        path = event.get("rawPath", "/")
        for route in self.routes:
            params = route.match(method, path)
            if params is None:
                continue
            event = dict(event)
            event["routeKey"] = f"{route.method} {route.path}"
            event["requestContext"] = {**event["requestContext"], "routeKey": event["routeKey"]}
            if params:
                event["pathParameters"] = params
            if route.authorize:
                denied = self._authorize(event)
                if denied is not None:
                    return denied
            return self._invoke(route.function_id, event)
        return _json(404, "Not Found")

    def _authorize(self, event: dict[str, Any]) -> dict[str, Any] | None:
        headers = event.get("headers") or {}
        identity = [headers.get(h) for h in self.identity_headers]
        if any(not v for v in identity):
            return _json(401, "Unauthorized")
        request = {**event, "type": "REQUEST", "identitySource": identity,
                   "routeArn": f"arn:aws:execute-api:local:000000000000:local/$default/"
                               f"{event['routeKey'].replace(' ', '')}"}
        answer = self._invoke(self.authorizer_id, request)
        if not (isinstance(answer, Mapping) and answer.get("isAuthorized") is True):
            return _json(403, "Forbidden")
        event["requestContext"] = {**event["requestContext"],
                                   "authorizer": {"lambda": dict(answer.get("context") or {})}}
        return None
