"""Read the SAM template and resolve its intrinsic functions against local physical ids.

The embedded stack builds every resource from ``infra/template.yaml`` so that the local
emulation cannot drift from the infrastructure. CloudFormation does the resolution on AWS; here
:class:`Resolver` evaluates the subset the template uses (``Ref``, ``Fn::GetAtt``, ``Fn::Sub``,
``Fn::Join``, ``Fn::Select``, ``Fn::Split``, ``Fn::If`` and the condition functions) — no
library does this outside CloudFormation, so it is written by hand, small and strict.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from alertprod.errors import ConfigError

__all__ = ["find_template", "load_template", "Resolver", "NO_VALUE"]

#: Path of the template inside the repository.
TEMPLATE_RELPATH = Path("infra") / "template.yaml"


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


#: What ``Ref: AWS::NoValue`` resolves to; removed from the enclosing list or mapping.
NO_VALUE = _NoValue()


def find_template(start: Path | None = None) -> Path:
    """Locate ``infra/template.yaml``: walk up from ``start`` (default: this package's folder).

    With the package installed editable the repository root is an ancestor of this file.

    Raises
    ------
    ConfigError
        When no ancestor holds the template; pass ``template_path=`` explicitly then.
    """
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        candidate = folder / TEMPLATE_RELPATH
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"cannot find {TEMPLATE_RELPATH} above {here}; pass template_path= to the stack"
    )


class _TemplateLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short-form tags into their long form."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path | str) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template (YAML or JSON), short-form tags included.

    ``!Ref X`` becomes ``{"Ref": "X"}``, ``!GetAtt A.B`` becomes ``{"Fn::GetAtt": ["A", "B"]}``,
    and every other ``!Tag`` becomes ``{"Fn::Tag": ...}``, as CloudFormation reads them.

    Raises
    ------
    ConfigError
        When the file is missing, does not parse, or has no ``Resources``.
    """
    path = Path(path)
    try:
        template = yaml.load(path.read_text(), Loader=_TemplateLoader)  # noqa: S506 - safe loader subclass
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"template_path {path}: {exc}") from exc
    if not isinstance(template, dict) or "Resources" not in template:
        raise ConfigError(f"template_path {path} has no Resources section")
    return template


_SUB_RE = re.compile(r"\$\{([^}!][^}]*)\}")


class Resolver:
    """Evaluate intrinsic functions of a template.

    Parameters
    ----------
    template : dict
        The decoded template.
    pseudo : mapping
        ``AWS::Region``, ``AWS::AccountId``, ``AWS::StackName``, ``AWS::Partition``, ...
    attribute : callable
        ``attribute(logical_id, name)`` -> value, where ``name`` is ``"Ref"`` or a GetAtt
        attribute (``"Arn"``, ``"QueueName"``, ...), for resources.
    parameter_overrides : mapping, optional
        Values of template parameters; others take their ``Default``.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        pseudo: Mapping[str, str],
        attribute: Callable[[str, str], Any],
        parameter_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.template = template
        self.pseudo = dict(pseudo)
        self.attribute = attribute
        self.parameters: dict[str, Any] = {}
        overrides = dict(parameter_overrides or {})
        for name, spec in (template.get("Parameters") or {}).items():
            if name in overrides:
                self.parameters[name] = overrides.pop(name)
            elif "Default" in spec:
                self.parameters[name] = spec["Default"]
            else:
                raise ConfigError(f"template parameter {name} has no Default; pass it in parameter_overrides")
        if overrides:
            raise ConfigError(f"parameter_overrides names unknown parameters {sorted(overrides)}")
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        """The value of a named condition of the ``Conditions`` section."""
        if name not in self._conditions:
            try:
                expr = self.template["Conditions"][name]
            except KeyError as exc:
                raise ConfigError(f"template has no condition {name!r}") from exc
            self._conditions[name] = bool(self.resolve(expr))
        return self._conditions[name]

    def resolve(self, node: Any) -> Any:
        """Resolve every intrinsic function inside ``node`` (recursively)."""
        if isinstance(node, list):
            items = [self.resolve(v) for v in node]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(node, Mapping):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._intrinsic(key, arg)
        out = {}
        for k, v in node.items():
            value = self.resolve(v)
            if value is not NO_VALUE:
                out[k] = value
        return out

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.template["Resources"]:
            return self.attribute(name, "Ref")
        raise ConfigError(f"template refers to unknown name {name!r}")

    def _getatt(self, logical_id: str, attr: str) -> Any:
        if logical_id not in self.template["Resources"]:
            raise ConfigError(f"Fn::GetAtt of unknown resource {logical_id!r}")
        return self.attribute(logical_id, attr)

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match) -> str:
            name = match.group(1).strip()
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attr = name.split(".", 1)
                return str(self._getatt(logical_id, attr))
            return str(self._ref(name))

        return _SUB_RE.sub(replace, text).replace("${!", "${")

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self._ref(arg)
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else list(arg)
            return self._getatt(parts[0], self.resolve(parts[1]))
        if key == "Fn::Sub":
            if isinstance(arg, str):
                return self._sub(arg, {})
            text, variables = arg
            return self._sub(text, self.resolve(variables))
        if key == "Fn::Join":
            sep, items = arg
            return str(sep).join(str(v) for v in self.resolve(items))
        if key == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if key == "Fn::Split":
            sep, text = self.resolve(arg)
            return str(text).split(sep)
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key == "Fn::Equals":
            a, b = self.resolve(arg)
            return str(a) == str(b)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(v) for v in arg)
        if key == "Fn::Or":
            return any(self.resolve(v) for v in arg)
        raise ConfigError(f"the embedded stack does not evaluate {key}")
