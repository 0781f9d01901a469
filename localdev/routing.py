"""Azure Functions (ASP.NET Core style) route templates: parsing, precedence and matching."""

from __future__ import annotations

import datetime
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import unquote

Constraint = Callable[[str], bool]


class RouteTemplateError(ValueError):
    """A route template that the Functions host would reject."""


@dataclass(frozen=True)
class Literal:
    text: str


@dataclass(frozen=True)
class Parameter:
    name: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    constraints: tuple[tuple[str, Constraint], ...] = ()

    @property
    def may_be_absent(self) -> bool:
        return self.optional or self.catch_all or self.default is not None


Part = Literal | Parameter
Segment = tuple[Part, ...]


# ---------------------------------------------------------------------------
# Template parsing
# ---------------------------------------------------------------------------

def split_template(template: str) -> list[Segment]:
    """Split a route template into segments of literal and parameter parts.

    `{{` and `}}` stand for literal braces (also inside a parameter, where a
    regex constraint may need them); a `/` inside braces does not end a segment.
    """
    text = template.strip()
    if text.startswith("~/"):
        text = text[2:]
    text = text.strip("/")
    if not text:
        return []
    segments: list[Segment] = []
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif char == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif char == "{":
            if literal:
                parts.append(Literal("".join(literal)))
                literal = []
            inner, i = _read_parameter_text(text, i + 1, template)
            if parts and isinstance(parts[-1], Parameter):
                raise RouteTemplateError(
                    f"{template!r}: two parameters in one segment need a literal between them")
            parts.append(parse_parameter(inner, template))
        elif char == "}":
            raise RouteTemplateError(f"{template!r}: unmatched '}}'")
        elif char == "/":
            if literal:
                parts.append(Literal("".join(literal)))
                literal = []
            if not parts:
                raise RouteTemplateError(f"{template!r}: empty segment")
            segments.append(tuple(parts))
            parts = []
            i += 1
        else:
            literal.append(char)
            i += 1
    if literal:
        parts.append(Literal("".join(literal)))
    if not parts:
        raise RouteTemplateError(f"{template!r}: empty segment")
    segments.append(tuple(parts))
    _validate_segments(segments, template)
    return segments


def _read_parameter_text(text: str, start: int, template: str) -> tuple[str, int]:
    chars: list[str] = []
    i = start
    while i < len(text):
        if text.startswith("}}", i):
            chars.append("}")
            i += 2
        elif text.startswith("{{", i):
            chars.append("{")
            i += 2
        elif text[i] == "}":
            return "".join(chars), i + 1
        else:
            chars.append(text[i])
            i += 1
    raise RouteTemplateError(f"{template!r}: unterminated parameter")


_PARAMETER_NAME = re.compile(r"[^:=?{}*/]+")


def parse_parameter(inner: str, template: str = "") -> Parameter:
    """Parse the text between braces: `[*|**]name[:constraint(args)...][?|=default]`."""
    catch_all = False
    rest = inner
    if rest.startswith("**"):
        catch_all, rest = True, rest[2:]
    elif rest.startswith("*"):
        catch_all, rest = True, rest[1:]
    name_match = _PARAMETER_NAME.match(rest)
    if not name_match:
        raise RouteTemplateError(f"{template!r}: parameter {{{inner}}} has no name")
    name = name_match.group(0)
    rest = rest[name_match.end():]
    constraints: list[tuple[str, Constraint]] = []
    while rest.startswith(":"):
        spec, rest = _read_constraint(rest[1:])
        constraints.append((spec, build_constraint(spec, template)))
    optional = False
    default = None
    if rest.startswith("="):
        default, rest = rest[1:], ""
    elif rest == "?":
        optional, rest = True, ""
    if rest:
        raise RouteTemplateError(f"{template!r}: cannot parse parameter {{{inner}}}")
    if catch_all and optional:
        raise RouteTemplateError(f"{template!r}: a catch-all parameter cannot be optional")
    return Parameter(name, optional, catch_all, default, tuple(constraints))


def _read_constraint(text: str) -> tuple[str, str]:
    """Return (constraint spec, remaining text).

    Arguments in parentheses may contain `:` or `)` (regexes do), so the
    argument list ends at the first `)` that is followed by the end of the
    text or by another modifier.
    """
    paren = text.find("(")
    stop = min((p for p in (text.find(":"), text.find("="), text.find("?")) if p >= 0),
               default=len(text))
    if paren < 0 or paren > stop:
        return text[:stop], text[stop:]
    for i in range(paren + 1, len(text)):
        if text[i] == ")" and (i + 1 == len(text) or text[i + 1] in ":=?"):
            return text[:i + 1], text[i + 1:]
    raise RouteTemplateError(f"unterminated constraint arguments in {text!r}")


def _validate_segments(segments: list[Segment], template: str) -> None:
    names: set[str] = set()
    for index, segment in enumerate(segments):
        for position, part in enumerate(segment):
            if not isinstance(part, Parameter):
                continue
            lowered = part.name.lower()
            if lowered in names:
                raise RouteTemplateError(f"{template!r}: parameter {part.name!r} appears twice")
            names.add(lowered)
            if part.catch_all and (index != len(segments) - 1 or len(segment) != 1):
                raise RouteTemplateError(f"{template!r}: a catch-all must be the whole last segment")
            if part.may_be_absent and len(segment) > 1:
                if position != len(segment) - 1 or not isinstance(segment[position - 1], Literal):
                    raise RouteTemplateError(
                        f"{template!r}: an optional parameter in a complex segment must come last")


# ---------------------------------------------------------------------------
# Inline constraints (the subset of ASP.NET's that makes sense here)
# ---------------------------------------------------------------------------

_INTEGER = re.compile(r"[+-]?\d+\Z")


def _integer_in(low: int, high: int) -> Constraint:
    return lambda value: bool(_INTEGER.match(value)) and low <= int(value) <= high


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value.strip().lower() not in {"nan", "inf", "-inf", "+inf", "infinity"}


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value.strip("{}()"))
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _numeric_args(args: str, counts: tuple[int, ...], spec: str) -> list[int]:
    try:
        numbers = [int(a) for a in args.split(",")]
    except ValueError:
        raise RouteTemplateError(f"constraint {spec!r} needs integer arguments") from None
    if len(numbers) not in counts:
        raise RouteTemplateError(f"constraint {spec!r} has the wrong number of arguments")
    return numbers


_SIMPLE_CONSTRAINTS: dict[str, Constraint] = {
    "int": _integer_in(-(2**31), 2**31 - 1),
    "long": _integer_in(-(2**63), 2**63 - 1),
    "bool": lambda value: value.lower() in ("true", "false"),
    "alpha": lambda value: value.isascii() and value.isalpha(),
    "guid": _is_guid,
    "decimal": _is_float,
    "double": _is_float,
    "float": _is_float,
    "datetime": _is_datetime,
    "required": lambda value: value != "",
}


def build_constraint(spec: str, template: str = "") -> Constraint:
    """Turn `int`, `min(1)`, `regex(^a+$)`... into a predicate on the decoded value."""
    name, _, args = spec.partition("(")
    key = name.strip().lower()
    if not args:
        if key in _SIMPLE_CONSTRAINTS:
            return _SIMPLE_CONSTRAINTS[key]
        raise RouteTemplateError(f"{template!r}: unknown route constraint {spec!r}")
    args = args[:-1] if args.endswith(")") else args
    if key == "regex":
        # ASP.NET uses IsMatch (unanchored, case-insensitive): templates anchor themselves.
        pattern = re.compile(args, re.IGNORECASE)
        return lambda value: pattern.search(value) is not None
    if key in ("min", "max"):
        (bound,) = _numeric_args(args, (1,), spec)
        is_int = _SIMPLE_CONSTRAINTS["long"]
        if key == "min":
            return lambda value: is_int(value) and int(value) >= bound
        return lambda value: is_int(value) and int(value) <= bound
    if key == "range":
        low, high = _numeric_args(args, (2,), spec)
        return lambda value: _SIMPLE_CONSTRAINTS["long"](value) and low <= int(value) <= high
    if key == "minlength":
        (low,) = _numeric_args(args, (1,), spec)
        return lambda value: len(value) >= low
    if key == "maxlength":
        (high,) = _numeric_args(args, (1,), spec)
        return lambda value: len(value) <= high
    if key == "length":
        bounds = _numeric_args(args, (1, 2), spec)
        low, high = (bounds[0], bounds[0]) if len(bounds) == 1 else bounds
        return lambda value: low <= len(value) <= high
    raise RouteTemplateError(f"{template!r}: unknown route constraint {spec!r}")


# ---------------------------------------------------------------------------
# Compiled routes
# ---------------------------------------------------------------------------

def segment_precedence(segment: Segment) -> int:
    """ASP.NET's inbound precedence digit: lower is more specific."""
    if len(segment) > 1:
        return 2
    part = segment[0]
    if isinstance(part, Literal):
        return 1
    if part.catch_all:
        return 4 if part.constraints else 5
    return 2 if part.constraints else 3


@dataclass
class Route:
    """One HTTP function's route, compiled once at start-up."""

    template: str
    methods: frozenset[str] | None
    target: Any
    order: int = 0
    segments: list[Segment] = field(init=False)
    precedence: tuple[int, ...] = field(init=False)
    first_literal: str | None = field(init=False)
    _regex: re.Pattern[str] = field(init=False, repr=False)
    _groups: list[tuple[str, Parameter]] = field(init=False, repr=False)
    _checks: list[tuple[str, Parameter]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.segments = split_template(self.template)
        self.precedence = tuple(segment_precedence(s) for s in self.segments)
        first = self.segments[0] if self.segments else ()
        self.first_literal = (first[0].text.lower()
                              if len(first) == 1 and isinstance(first[0], Literal) else None)
        self._groups = []
        pattern = "".join(self._segment_pattern(s) for s in self.segments) or "/"
        self._regex = re.compile(pattern + "/?", re.IGNORECASE | re.DOTALL)
        self._checks = [(g, p) for g, p in self._groups if p.constraints]

    def _group_for(self, parameter: Parameter) -> str:
        group = f"p{len(self._groups)}"
        self._groups.append((group, parameter))
        return group

    def _segment_pattern(self, segment: Segment) -> str:
        if len(segment) == 1 and isinstance(segment[0], Parameter):
            parameter = segment[0]
            group = self._group_for(parameter)
            if parameter.catch_all:
                return f"(?:/(?P<{group}>.*))?"
            body = f"/(?P<{group}>[^/]+)"
            return f"(?:{body})?" if parameter.may_be_absent else body
        pieces: list[str] = []
        for part in segment:
            if isinstance(part, Literal):
                pieces.append(re.escape(part.text))
            elif part.may_be_absent:
                # Only allowed last, after a literal: `{file}.{ext?}` - the
                # separator is optional together with the parameter. The value
                # may not contain the separator, so `a.b.txt` splits at the
                # last dot as in ASP.NET, and the parameter before it is lazy.
                separator = pieces.pop()
                if pieces and pieces[-1].endswith("[^/]+)"):
                    pieces[-1] = pieces[-1][:-1] + "?)"
                group = self._group_for(part)
                pieces.append(f"(?:{separator}(?P<{group}>(?:(?!{separator})[^/])+))?")
            else:
                # Greedy, like ASP.NET which scans complex segments right to left.
                pieces.append(f"(?P<{self._group_for(part)}>[^/]+)")
        return "/" + "".join(pieces)

    def match(self, decoded_path: str) -> dict[str, str] | None:
        """Route values for a decoded path, or None when it does not match."""
        found = self._regex.fullmatch(decoded_path)
        if found is None:
            return None
        for group, parameter in self._checks:
            value = found.group(group)
            if value is None:
                continue
            value = _restore_slashes(value)
            if not all(check(value) for _, check in parameter.constraints):
                return None
        values: dict[str, str] = {}
        for group, parameter in self._groups:
            value = found.group(group)
            if value is None or (parameter.catch_all and value == ""):
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                continue
            values[parameter.name] = _restore_slashes(value)
        return values

    def allows(self, method: str) -> bool:
        return self.methods is None or method in self.methods


_ENCODED_SLASH = re.compile("%2[fF]")


def decode_path(raw_path: str) -> str:
    """Percent-decode a request path except `%2F`, which must not split segments (as Kestrel)."""
    if "%" not in raw_path:
        return raw_path
    return unquote(_ENCODED_SLASH.sub("%252F", raw_path))


def _restore_slashes(value: str) -> str:
    return value.replace("%2F", "/") if "%2F" in value else value


@dataclass
class RouteResolution:
    route: Route | None
    route_params: Mapping[str, str]
    allowed_methods: frozenset[str] = frozenset()

    @property
    def method_not_allowed(self) -> bool:
        return self.route is None and bool(self.allowed_methods)


_NOT_FOUND = RouteResolution(None, {})


class Router:
    """Resolves (method, raw path) to a route, most specific first."""

    def __init__(self, routes: Iterable[Route], prefix: str = "api") -> None:
        self.prefix_segments = [s for s in prefix.strip("/").split("/") if s]
        ordered = sorted(routes, key=lambda r: (r.precedence, r.order))
        self.routes: list[Route] = ordered
        # Index by the first segment after the prefix so a request only tries
        # routes that can possibly match it.
        by_literal: dict[str, list[Route]] = {}
        self._unindexed: list[Route] = [r for r in ordered if r.first_literal is None]
        for route in ordered:
            if route.first_literal is not None:
                by_literal.setdefault(route.first_literal, [])
        for key in by_literal:
            by_literal[key] = [r for r in ordered
                               if r.first_literal == key or r.first_literal is None]
        self._by_literal = by_literal
        self._prefix = "/" + "/".join(self.prefix_segments) if self.prefix_segments else ""
        self._prefix_lower = self._prefix.lower()
        self._prefix_length = len(self._prefix)

    @classmethod
    def build(cls, specs: Sequence[tuple[str, Iterable[str] | None, Any]],
              prefix: str = "api") -> "Router":
        """Convenience: specs are (route template, methods or None, target)."""
        routes = [Route(template, None if methods is None else frozenset(m.upper() for m in methods),
                        target, order)
                  for order, (template, methods, target) in enumerate(specs)]
        return cls(routes, prefix)

    def _route_relative(self, decoded_path: str) -> str | None:
        """The part of the path after the route prefix, or None if the prefix is absent."""
        if not self._prefix:
            return decoded_path
        if decoded_path[:self._prefix_length].lower() != self._prefix_lower:
            return None
        rest = decoded_path[self._prefix_length:]
        if not rest:
            return "/"
        return rest if rest[0] == "/" else None

    def resolve(self, method: str, raw_path: str) -> RouteResolution:
        relative = self._route_relative(decode_path(raw_path))
        if relative is None:
            return _NOT_FOUND
        first = relative[1:].split("/", 1)[0].lower()
        allowed: set[str] = set()
        for route in self._by_literal.get(first, self._unindexed):
            values = route.match(relative)
            if values is None:
                continue
            if route.allows(method):
                return RouteResolution(route, values)
            allowed.update(route.methods or ())
        if allowed:
            return RouteResolution(None, {}, frozenset(allowed))
        return _NOT_FOUND
