"""Label and field selectors with the Kubernetes API's grammar, for the lab's API server.

The plugin narrows what it reads with selectors (`-l app=x`, `status.phase=Running`); a lab server that
ignored them would let a collector that forgets to filter, or filters wrongly, pass its tests. So the
lab parses them as kube-apiserver does and rejects what kube-apiserver rejects (with the same messages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable


class SelectorError(ValueError):
    """A selector the real API server would answer with 400 BadRequest."""


# A label key: optional DNS-subdomain prefix and a name of at most 63 characters.
_KEY = r"(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_KEY_RE = re.compile(rf"^{_KEY}$")
_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SET_RE = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")
_BINARY_RE = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=|>|<)\s*(?P<value>[^=!<>\s]*)\s*$")
_EXISTS_RE = re.compile(rf"^\s*(?P<neg>!)?\s*(?P<key>{_KEY})\s*$")


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    operator: str  # "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "in":
            return present and value in self.values
        if self.operator == "notin":
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        # gt/lt compare integers; a label that is absent or not an integer never matches.
        try:
            number = int(value) if value is not None else None
        except ValueError:
            return False
        if number is None:
            return False
        bound = int(self.values[0])
        return number > bound if self.operator == "gt" else number < bound


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside a parenthesised value set."""
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return terms


def _checked_value(value: str, term: str) -> str:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise SelectorError(f"unable to parse requirement: invalid label value: {value!r} in {term!r}")
    return value


def parse_label_selector(selector: str) -> tuple[LabelRequirement, ...]:
    """Parse a labelSelector query value; an empty selector matches everything."""
    if not selector.strip():
        return ()
    requirements: list[LabelRequirement] = []
    for term in _split_terms(selector):
        if not term.strip():
            raise SelectorError(f"found '', expected: identifier in label selector {selector!r}")
        if match := _SET_RE.match(term):
            values = tuple(_checked_value(v.strip(), term) for v in match["values"].split(","))
            requirements.append(LabelRequirement(match["key"], match["op"], values))
        elif match := _BINARY_RE.match(term):
            op, value = match["op"], match["value"]
            if op in (">", "<"):
                if not re.fullmatch(r"-?\d+", value):
                    raise SelectorError(f"unable to parse requirement: for 'gt', 'lt' operators, exactly one "
                                        f"integer value is required, got {value!r}")
                requirements.append(LabelRequirement(match["key"], "gt" if op == ">" else "lt", (value,)))
            else:
                _checked_value(value, term)
                requirements.append(LabelRequirement(match["key"], "notin" if op == "!=" else "in", (value,)))
        elif match := _EXISTS_RE.match(term):
            requirements.append(LabelRequirement(match["key"], "!" if match["neg"] else "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {term.strip()!r} is not a valid label selector term")
    return tuple(requirements)


def labels_match(requirements: tuple[LabelRequirement, ...], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(requirement.matches(labels) for requirement in requirements)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    value: str
    negated: bool


def _dotted(path: str) -> Callable[[dict[str, Any]], str]:
    keys = path.split(".")

    def read(obj: dict[str, Any]) -> str:
        current: Any = obj
        for key in keys:
            if not isinstance(current, dict):
                return ""
            current = current.get(key)
        if isinstance(current, bool):
            return "true" if current else "false"
        return "" if current is None else str(current)

    return read


# Fields every kind accepts, then the extra ones kube-apiserver registers per kind. Anything else is
# refused with "field label not supported", as the real server does.
_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
    "Namespace": ("status.phase",),
    "Secret": ("type",),
    "Node": ("spec.unschedulable",),
    "Event": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
              "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
              "reason", "reportingComponent", "source", "type"),
    "ReplicaSet": ("status.replicas",),
}


def parse_field_selector(selector: str, kind: str) -> tuple[FieldRequirement, ...]:
    if not selector.strip():
        return ()
    supported = _COMMON_FIELDS + _KIND_FIELDS.get(kind, ())
    requirements: list[FieldRequirement] = []
    for term in selector.split(","):
        match = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*", term)
        if not match:
            raise SelectorError(f"invalid selector: {selector!r}; can't understand {term!r}")
        field, op, value = match.groups()
        if field not in supported:
            raise SelectorError(f'field label not supported: {field}')
        requirements.append(FieldRequirement(field, value, op == "!="))
    return tuple(requirements)


def fields_match(requirements: tuple[FieldRequirement, ...], obj: dict[str, Any]) -> bool:
    for requirement in requirements:
        actual = _dotted(requirement.field)(obj)
        if requirement.field == "spec.hostNetwork" and actual == "":
            actual = "false"
        if (actual == requirement.value) == requirement.negated:
            return False
    return True
