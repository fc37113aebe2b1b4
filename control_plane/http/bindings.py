"""HTTP routes of the admin RPCs, read from their `google.api.http` annotations.

The contract declares each route once (a path template, a verb, which part of the request
the body fills); nothing here names an RPC. A template is literal segments and variables
(`/provider-keys/{id}/rotate`, `/accounts/{account.id}`): a variable matches one whole
segment and sets the request field it names (a dotted path reaches into a message field).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import cast

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import Descriptor, MethodDescriptor, ServiceDescriptor

# `{field}` and its long form `{field=*}`: one segment. Multi-segment forms are refused.
_VARIABLE = re.compile(r"^\{([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)(?:=\*)?\}$")
_VERBS = ("get", "put", "post", "delete", "patch")


class BindingError(ValueError):
    """An annotation this transcoder cannot serve (caught at start-up, never per request)."""


@dataclass(frozen=True, slots=True)
class Binding:
    """One HTTP route of one RPC."""

    verb: str
    """Upper-case HTTP method."""
    template: str
    segments: tuple[str, ...]
    """Literal segments, and `{field.path}` for variables."""
    body: str
    """`*` (the whole request), a top-level field name, or empty (no body)."""
    method: MethodDescriptor

    @property
    def rpc(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(s[1:-1] for s in self.segments if s.startswith("{"))

    @property
    def success_status(self) -> int:
        """201 for a create, 204 for a delete (its response is empty), 200 otherwise."""
        if self.verb == "POST" and self.method.name.startswith("Create"):
            return 201
        if self.verb == "DELETE" and not self.method.output_type.fields:
            return 204
        return 200

    def match(self, parts: tuple[str, ...]) -> dict[str, str] | None:
        """The path variables, when `parts` (the URL's decoded segments) fit the template."""
        if len(parts) != len(self.segments):
            return None
        found: dict[str, str] = {}
        for want, got in zip(self.segments, parts, strict=True):
            if want.startswith("{"):
                if not got:
                    return None
                found[want[1:-1]] = got
            elif want != got:
                return None
        return found


def _field_path_exists(message: Descriptor, path: str) -> bool:
    descriptor: Descriptor | None = message
    for name in path.split("."):
        if descriptor is None or name not in descriptor.fields_by_name:
            return False
        descriptor = descriptor.fields_by_name[name].message_type
    return True


def _binding(rule: http_pb2.HttpRule, method: MethodDescriptor) -> Binding:
    verb = rule.WhichOneof("pattern")
    if verb not in _VERBS:
        raise BindingError(f"{method.full_name}: unsupported pattern {verb!r}")
    template = cast(str, getattr(rule, verb))
    if not template.startswith("/") or template.endswith("/"):
        raise BindingError(f"{method.full_name}: bad path template {template!r}")
    segments: list[str] = []
    for segment in template[1:].split("/"):
        variable = _VARIABLE.match(segment)
        if "{" in segment and variable is None:
            raise BindingError(f"{method.full_name}: unsupported segment {segment!r}")
        if variable and not _field_path_exists(method.input_type, variable.group(1)):
            raise BindingError(f"{method.full_name}: {segment} names no request field")
        segments.append("{" + variable.group(1) + "}" if variable else segment)
    if rule.body not in ("", "*"):
        field = method.input_type.fields_by_name.get(rule.body)
        if field is None or field.message_type is None or field.is_repeated:
            raise BindingError(f"{method.full_name}: body {rule.body!r} names no message field")
    # The template as served and documented: variables in their short form.
    normal = "/" + "/".join(segments)
    return Binding(verb.upper(), normal, tuple(segments), rule.body, method)


def _rules(method: MethodDescriptor) -> Iterator[http_pb2.HttpRule]:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return
    rule = options.Extensions[annotations_pb2.http]
    yield rule
    yield from rule.additional_bindings


def bindings(services: Iterable[ServiceDescriptor]) -> tuple[Binding, ...]:
    """Every route of every annotated method of `services`, in declaration order.

    Raises BindingError for an annotation it cannot serve, or for two routes that one
    request could match (same verb, same literals, variables in the same places).
    """
    found: list[Binding] = []
    shapes: dict[tuple[str, tuple[str, ...]], str] = {}
    for service in services:
        for method in service.methods:
            if method.client_streaming or method.server_streaming:
                continue
            for rule in _rules(method):
                binding = _binding(rule, method)
                shape = tuple("{}" if s.startswith("{") else s for s in binding.segments)
                other = shapes.setdefault((binding.verb, shape), method.full_name)
                if other != method.full_name:
                    raise BindingError(
                        f"{binding.verb} {binding.template} of {method.full_name} "
                        f"is also a route of {other}"
                    )
                found.append(binding)
    return tuple(found)


class Router:
    """Finds the binding of a request: by path first, then by verb (404 vs 405)."""

    def __init__(self, all_bindings: Iterable[Binding]) -> None:
        self.bindings = tuple(all_bindings)
        # Literal segments win over variables where both could match.
        self._ordered = sorted(self.bindings, key=lambda b: len(b.variables))

    def find(self, verb: str, parts: tuple[str, ...]) -> tuple[Binding, dict[str, str]] | None:
        """The binding of a request and its path variables."""
        for binding in self._ordered:
            variables = binding.match(parts)
            if variables is not None and binding.verb == verb:
                return binding, variables
        return None

    def verbs(self, parts: tuple[str, ...]) -> list[str]:
        """The methods some binding serves on this path (empty: no such path)."""
        return sorted({b.verb for b in self.bindings if b.match(parts) is not None})

    def by_rpc(self) -> dict[str, tuple[Binding, ...]]:
        """RPC path -> its bindings, in declaration order."""
        grouped: dict[str, list[Binding]] = {}
        for binding in self.bindings:
            grouped.setdefault(binding.rpc, []).append(binding)
        return {rpc: tuple(items) for rpc, items in grouped.items()}
