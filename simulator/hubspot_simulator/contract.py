"""HubSpot's published contract: request and answer bodies checked against HubSpot's own API models.

The models are those of HubSpot's official Python client, ``hubspot-api-client`` (Apache-2.0),
generated from HubSpot's OpenAPI specs: each model class names its fields (``attribute_map``),
their types (``openapi_types``) and, in its setters, which are required and which values an
enumeration allows. This module reads that once per model and checks JSON bodies against it,
naming each problem by a dotted path (``inputs[0].properties.age``).

Where HubSpot's guides and the generated models disagree, the guides win; each such place
says so where it is declared (:data:`_GUIDE_FIELDS`, :data:`_GUIDE_REQUIRED`, :data:`_HAND_SPECS`).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import textwrap
import threading
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .routing import DATED

OBJECTS = "hubspot.crm.objects.models"
ASSOCIATIONS = "hubspot.crm.associations.v4.models"
ASSOCIATION_SCHEMA = "hubspot.crm.associations.v4.schema.models"
PROPERTIES = "hubspot.crm.properties.models"
OAUTH = "hubspot.oauth.models"
HAND = "guide"  # specs written here from HubSpot's guides: the client has no model for them


@dataclass(frozen=True)
class FieldSpec:
    """One field of a model: its type as the generator writes it, whether required, allowed values."""

    type: str
    required: bool = False
    allowed: frozenset[str] | None = None


@dataclass
class Spec:
    """A model: its JSON fields, and the module its nested model names resolve in."""

    name: str
    module: str
    fields: dict[str, FieldSpec] = field(default_factory=dict)


# -- reading the client's models ---------------------------------------------------------------

#: Fields HubSpot's guides document that the generated model lacks (model name -> fields).
_GUIDE_FIELDS: dict[str, dict[str, FieldSpec]] = {
    # Every HubSpot error body carries "status": "error" (the guides' examples; the Error model omits it).
    "Error": {"status": FieldSpec("str")},
    # The OAuth changelog (August 2025): token answers add hub_id and scopes.
    "TokenResponseIF": {"hub_id": FieldSpec("int"), "scopes": FieldSpec("list[str]")},
}

#: Fields HubSpot's current specs require that the 12.x models leave optional. The objects spec
#: (and HUBSPOT_API.md) requires ``associations`` on each create input; hubspot-api-client 12.0.0
#: was generated before that.
_GUIDE_REQUIRED: dict[str, frozenset[str]] = {
    "SimplePublicObjectBatchInputForCreate": frozenset({"associations"}),
}

#: Answers the client has no model for, written from HubSpot's guides.
_HAND_SPECS: dict[str, Spec] = {
    # "Account information" guide, GET /account-info/v3/details.
    "AccountDetails": Spec("AccountDetails", HAND, {
        "portalId": FieldSpec("int", required=True),
        "accountType": FieldSpec(
            "str", required=True,
            allowed=frozenset({"STANDARD", "SANDBOX", "DEVELOPER_TEST", "APP_DEVELOPER", "DEVELOPER"}),
        ),
        "timeZone": FieldSpec("str", required=True),
        "companyCurrency": FieldSpec("str", required=True),
        "additionalCurrencies": FieldSpec("list[str]", required=True),
        "utcOffset": FieldSpec("str", required=True),
        "utcOffsetMilliseconds": FieldSpec("int", required=True),
        "uiDomain": FieldSpec("str", required=True),
        "dataHostingLocation": FieldSpec("str", required=True),
    }),
    # "Private apps" guide: POST /oauth/v2/private-apps/get/access-token-info.
    "PrivateAppTokenInfoRequest": Spec("PrivateAppTokenInfoRequest", HAND, {
        "tokenKey": FieldSpec("str", required=True),
    }),
    "PrivateAppTokenInfo": Spec("PrivateAppTokenInfo", HAND, {
        "userId": FieldSpec("int", required=True),
        "hubId": FieldSpec("int", required=True),
        "appId": FieldSpec("int", required=True),
        "scopes": FieldSpec("list[str]", required=True),
        "trialScopes": FieldSpec("list[str]"),
        "trialScopeToScopeGroupPks": FieldSpec("list[int]"),
    }),
    # The rate-limit guide's 429 body: HubSpot's Error plus errorType, policyName and groupName.
    "RateLimitError": Spec("RateLimitError", HAND, {
        "status": FieldSpec("str", required=True),
        "message": FieldSpec("str", required=True),
        "correlationId": FieldSpec("str", required=True),
        "category": FieldSpec("str", required=True),
        "errorType": FieldSpec("str", required=True, allowed=frozenset({"RATE_LIMIT"})),
        "policyName": FieldSpec("str", required=True, allowed=frozenset({"TEN_SECONDLY_ROLLING", "DAILY", "SECONDLY"})),
        "groupName": FieldSpec("str"),
        "links": FieldSpec("dict[str, str]"),
        "context": FieldSpec("dict[str, list[str]]"),
    }),
}

_PROBE_CONFIG = types.SimpleNamespace(client_side_validation=True)
_lock = threading.Lock()
_cache: dict[tuple[str, str], Spec] = {}


def _allowed_values(setter: Any) -> frozenset[str] | None:
    """The ``allowed_values = [...]`` list a generated setter checks against, if any."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(setter)))
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "allowed_values" for t in node.targets):
            return frozenset(ast.literal_eval(node.value))
    return None


def _compile(module: str, name: str) -> Spec:
    cls = getattr(importlib.import_module(module), name)
    spec = Spec(name, module)
    extra_required = _GUIDE_REQUIRED.get(name, frozenset())
    for attr, type_name in cls.openapi_types.items():
        json_name = cls.attribute_map[attr]
        probe = cls.__new__(cls)
        probe.local_vars_configuration = _PROBE_CONFIG
        required = json_name in extra_required
        try:
            setattr(probe, attr, None)  # the generated setter refuses None for required fields
        except ValueError as exc:
            required = required or "must not be `None`" in str(exc)
        spec.fields[json_name] = FieldSpec(type_name, required, _allowed_values(getattr(cls, attr).fset))
    spec.fields.update(_GUIDE_FIELDS.get(name, {}))
    return spec


def spec(module: str, name: str) -> Spec:
    """The spec of model ``name`` of the client's ``module`` (or of :data:`_HAND_SPECS`), cached."""
    if module == HAND:
        return _HAND_SPECS[name]
    key = (module, name)
    with _lock:
        found = _cache.get(key)
        if found is None:
            found = _cache[key] = _compile(module, name)
        return found


# -- checking a body ---------------------------------------------------------------------------

_LIST = re.compile(r"list\[(.+)\]")
_DICT = re.compile(r"dict\[str, (.+)\]")
_PRIMITIVE_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean"}


@dataclass(frozen=True)
class Problem:
    """One way a body is outside the contract: where (dotted path), what kind, in words."""

    path: str
    kind: str  # "missing", "undeclared", "type", "value"
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(body)'}: {self.message}"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Checker:
    """Walks a JSON value against a model, collecting :class:`Problem` items.

    ``null_values`` names dict fields whose values may be null although the model says string:
    HubSpot's answers carry ``"property": null`` for properties without a value (every read
    guide's examples), where the generated ``properties`` map says ``dict[str, str]``.
    """

    def __init__(self, null_values: Iterable[str] = ()) -> None:
        self.problems: list[Problem] = []
        self.null_values = frozenset(null_values)

    def model(self, sp: Spec, value: Any, path: str) -> None:
        """Check ``value`` against the model ``sp``."""
        if not isinstance(value, dict):
            self._type(path, f"{sp.name} (an object)", value)
            return
        for key, item in value.items():
            fs = sp.fields.get(key)
            if fs is None:
                where = _join(path, str(key))
                self.problems.append(Problem(where, "undeclared", f"field not declared by {sp.name}"))
                continue
            self.value(sp, fs, item, _join(path, key), key)
        for key, fs in sp.fields.items():
            if fs.required and key not in value:
                self.problems.append(Problem(_join(path, key), "missing", f"required by {sp.name}, missing"))

    def value(self, sp: Spec, fs: FieldSpec, item: Any, path: str, key: str) -> None:
        """Check one field's value (type and allowed values)."""
        self.typed(sp, fs.type, item, path, key)
        if fs.allowed is not None and isinstance(item, str) and item not in fs.allowed:
            listed = ", ".join(sorted(fs.allowed))
            self.problems.append(Problem(path, "value", f"{item!r} is not one of {sp.name}'s values ({listed})"))

    def typed(self, sp: Spec, type_name: str, item: Any, path: str, key: str) -> None:
        """Check ``item`` against a generator type name (``str``, ``list[X]``, ``dict[str, X]``, a model)."""
        if type_name == "object":
            return
        if item is None:
            self._type(path, type_name, item)
            return
        m = _LIST.fullmatch(type_name)
        if m:
            if not isinstance(item, list):
                self._type(path, "an array", item)
                return
            for i, element in enumerate(item):
                self.typed(sp, m[1], element, f"{path}[{i}]", key)
            return
        m = _DICT.fullmatch(type_name)
        if m:
            if not isinstance(item, dict):
                self._type(path, "an object", item)
                return
            for k, element in item.items():
                if element is None and key in self.null_values:
                    continue
                self.typed(sp, m[1], element, _join(path, str(k)), key)
            return
        if type_name in _PRIMITIVE_NAMES:
            self._primitive(type_name, item, path)
        elif type_name in {"datetime", "date"}:
            self._when(type_name, item, path)
        else:
            self.model(spec(sp.module, type_name), item, path)

    def _primitive(self, type_name: str, item: Any, path: str) -> None:
        if type_name == "str":
            ok = isinstance(item, str)
        elif type_name == "bool":
            ok = isinstance(item, bool)
        elif type_name == "int":
            ok = isinstance(item, int) and not isinstance(item, bool)
        else:
            ok = isinstance(item, int | float) and not isinstance(item, bool)
        if not ok:
            self._type(path, _PRIMITIVE_NAMES[type_name], item)

    def _when(self, type_name: str, item: Any, path: str) -> None:
        parse = date.fromisoformat if type_name == "date" else datetime.fromisoformat
        ok = isinstance(item, str)
        if ok:
            try:
                parse(item)
            except ValueError:
                ok = False
        if not ok:
            self._type(path, f"an ISO 8601 {type_name} string", item)

    def _type(self, path: str, wanted: str, item: Any) -> None:
        self.problems.append(Problem(path, "type", f"{_json_kind(item)} where the model has {wanted}"))


def check(module: str, name: str, body: Any, null_values: Iterable[str] = ()) -> list[Problem]:
    """The problems of ``body`` against model ``name`` of ``module`` (empty: within the contract)."""
    checker = Checker(null_values)
    checker.model(spec(module, name), body, "")
    return checker.problems


# -- the operations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One endpoint of HubSpot's API: its request model and the answer model per status.

    Attributes:
        name: How reports name it (``objects batch/upsert``).
        method: HTTP method.
        pattern: Full-match pattern of the path (v3 and date-versioned forms).
        request: ``(module, model)`` of a JSON request body, or None (no JSON body).
        answers: Status -> ``(module, model)`` of the answer, or None for an empty answer.
        error: ``(module, model)`` of the error answers (any status not in ``answers``, 4xx/5xx).
        null_values: Fields of answers whose map values may be null (see :class:`Checker`).
    """

    name: str
    method: str
    pattern: re.Pattern[str]
    request: tuple[str, str] | None
    answers: dict[int, tuple[str, str] | None]
    error: tuple[str, str]
    null_values: frozenset[str] = frozenset()


def _objects(action: str) -> str:
    return rf"/crm/(?:v3/objects|objects/{DATED})/[^/]+/batch/{action}/?"


def _associations(suffix: str) -> str:
    return rf"/crm/(?:v4/associations|associations/{DATED})/[^/]+/[^/]+/{suffix}/?"


def _properties(suffix: str = "") -> str:
    return rf"/crm/(?:v3/properties|properties/{DATED})/[^/]+{suffix}/?"


def _op(
    name: str, method: str, pattern: str, request: tuple[str, str] | None,
    answers: dict[int, tuple[str, str] | None], error: tuple[str, str] = (OBJECTS, "Error"),
    null_values: Iterable[str] = (),
) -> Operation:
    return Operation(name, method, re.compile(pattern), request, answers, error, frozenset(null_values))


# Batch answers: the v3 specs answer per-input errors with 207; the 2026-09 specs fold errors and
# numErrors into the 200/201 body (HUBSPOT_API.md). Both are checked against the "WithErrors"
# model, whose errors and numErrors are optional, so a 200 with or without errors fits.
_UPSERTED = (OBJECTS, "BatchResponseSimplePublicUpsertObjectWithErrors")
_OBJECTS = (OBJECTS, "BatchResponseSimplePublicObjectWithErrors")
_LABELLED = (ASSOCIATIONS, "BatchResponseLabelsBetweenObjectPairWithErrors")
_DEFAULTS = (ASSOCIATIONS, "BatchResponsePublicDefaultAssociation")
_READ_LINKS = (ASSOCIATIONS, "BatchResponsePublicAssociationMultiWithLabelWithErrors")

OPERATIONS: list[Operation] = [
    _op("objects batch/upsert", "POST", _objects("upsert"),
        (OBJECTS, "BatchInputSimplePublicObjectBatchInputUpsert"), {200: _UPSERTED, 207: _UPSERTED},
        null_values=["properties"]),
    _op("objects batch/read", "POST", _objects("read"),
        (OBJECTS, "BatchReadInputSimplePublicObjectId"), {200: _OBJECTS, 207: _OBJECTS},
        null_values=["properties"]),
    _op("objects batch/update", "POST", _objects("update"),
        (OBJECTS, "BatchInputSimplePublicObjectBatchInput"), {200: _OBJECTS, 207: _OBJECTS},
        null_values=["properties"]),
    _op("objects batch/create", "POST", _objects("create"),
        (OBJECTS, "BatchInputSimplePublicObjectBatchInputForCreate"), {201: _OBJECTS, 207: _OBJECTS},
        null_values=["properties"]),
    # 207: only with the simulator's archive_unknown_ids "error" (unconfirmed HubSpot behaviour).
    _op("objects batch/archive", "POST", _objects("archive"),
        (OBJECTS, "BatchInputSimplePublicObjectId"), {200: _OBJECTS, 204: None, 207: _OBJECTS}),
    _op("objects search", "POST", rf"/crm/(?:v3/objects|objects/{DATED})/[^/]+/search/?",
        (OBJECTS, "PublicObjectSearchRequest"),
        {200: (OBJECTS, "CollectionResponseWithTotalSimplePublicObjectForwardPaging")}, null_values=["properties"]),
    _op("associations batch/create", "POST", _associations("batch/create"),
        (ASSOCIATIONS, "BatchInputPublicAssociationMultiPost"), {200: _LABELLED, 201: _LABELLED, 207: _LABELLED},
        (ASSOCIATIONS, "Error")),
    _op("associations batch/associate/default", "POST", _associations("batch/associate/default"),
        (ASSOCIATIONS, "BatchInputPublicDefaultAssociationMultiPost"), {200: _DEFAULTS, 207: _DEFAULTS},
        (ASSOCIATIONS, "Error")),
    _op("associations batch/archive", "POST", _associations("batch/archive"),
        (ASSOCIATIONS, "BatchInputPublicAssociationMultiArchive"), {204: None}, (ASSOCIATIONS, "Error")),
    _op("associations batch/read", "POST", _associations("batch/read"),
        (ASSOCIATIONS, "BatchInputPublicFetchAssociationsBatchRequest"), {200: _READ_LINKS, 207: _READ_LINKS},
        (ASSOCIATIONS, "Error")),
    _op("associations labels", "GET", _associations("labels"), None,
        {200: (ASSOCIATION_SCHEMA, "CollectionResponseAssociationSpecWithLabelNoPaging")},
        (ASSOCIATION_SCHEMA, "Error")),
    _op("property groups read", "GET", _properties("/groups"), None,
        {200: (PROPERTIES, "CollectionResponsePropertyGroupNoPaging")}, (PROPERTIES, "Error")),
    _op("property groups create", "POST", _properties("/groups"), (PROPERTIES, "PropertyGroupCreate"),
        {201: (PROPERTIES, "PropertyGroup")}, (PROPERTIES, "Error")),
    _op("properties read", "GET", _properties(), None,
        {200: (PROPERTIES, "CollectionResponsePropertyNoPaging")}, (PROPERTIES, "Error")),
    _op("properties create", "POST", _properties(), (PROPERTIES, "PropertyCreate"),
        {201: (PROPERTIES, "ModelProperty")}, (PROPERTIES, "Error")),
    _op("account details", "GET", rf"/account-info/(?:v3|{DATED})/details/?", None,
        {200: (HAND, "AccountDetails")}),
    _op("private-app token info", "POST", r"/oauth/v2/private-apps/get/access-token-info/?",
        (HAND, "PrivateAppTokenInfoRequest"), {200: (HAND, "PrivateAppTokenInfo")}, (OAUTH, "Error")),
    # The grant is form-encoded (no JSON model); its answer is TokenResponseIF.
    _op("oauth token", "POST", r"/oauth/v[13]/token", None, {200: (OAUTH, "TokenResponseIF")}, (OAUTH, "Error")),
]


def operation(method: str, path: str) -> Operation | None:
    """The operation a request calls, or None (a path outside the contract, e.g. an unknown one)."""
    for op in OPERATIONS:
        if op.method == method and op.pattern.fullmatch(path):
            return op
    return None


def check_request(op: Operation, body: Any) -> list[Problem]:
    """The problems of a parsed JSON request body against the operation's request model."""
    if op.request is None:
        return []
    return check(*op.request, body)


def check_answer(op: Operation, status: int, body: Any) -> list[Problem]:
    """The problems of a parsed JSON answer against the model for its status.

    A 429 follows the rate-limit guide's body (:data:`_HAND_SPECS`), whatever the endpoint.
    """
    if status == 429:
        return check(HAND, "RateLimitError", body)
    if status in op.answers:
        model = op.answers[status]
        if model is None:
            return [] if body is None else [Problem("", "undeclared", f"a body where {op.name} answers {status} empty")]
        return check(*model, body, op.null_values)
    if status < 400:
        return [Problem("", "value", f"status {status} is not an answer of {op.name}")]
    return check(*op.error, body)


# -- refusing a request as HubSpot does --------------------------------------------------------

_CODES = {
    "missing": "REQUIRED_FIELD", "undeclared": "UNRECOGNIZED_FIELD", "type": "INVALID_TYPE", "value": "INVALID_VALUE",
}


def refusal_body(op: Operation, problems: list[Problem], correlation_id: str) -> dict[str, Any]:
    """HubSpot's 400 ``VALIDATION_ERROR`` body for a request outside the model (at most 10 problems named)."""
    assert op.request is not None  # noqa: S101 - only operations with a request model refuse bodies
    first = problems[0]
    model = op.request[1]
    message = f"Invalid input JSON: {first}"
    if first.kind == "missing":
        missing = [p.path for p in problems if p.kind == "missing"]
        message = f"Invalid input JSON: Cannot build {model}, some of required attributes are not set {missing}"
    elif first.kind == "type" and _property_name(first.path):
        message = (
            f'Invalid input JSON: value of property "{_property_name(first.path)}" must be a string '
            f"({first.path}: {first.message})."
        )
    errors = []
    for p in problems[:10]:
        context = {"field": [p.path]}
        name = _property_name(p.path)
        if name:
            context["propertyName"] = [name]
        errors.append({"message": str(p), "code": _CODES[p.kind], "in": p.path, "context": context})
    return {"status": "error", "message": message, "correlationId": correlation_id, "category": "VALIDATION_ERROR",
            "errors": errors}


def _property_name(path: str) -> str | None:
    """``num_orders`` of ``inputs[1].properties.num_orders``: the property a problem is about, if any."""
    head, _, name = path.rpartition(".")
    return name if head.endswith("properties") and name else None


def parse_body(body: bytes) -> tuple[bool, Any]:
    """``(True, value)`` for a JSON body, ``(False, None)`` when empty or not JSON."""
    if not body:
        return False, None
    try:
        return True, json.loads(body)
    except ValueError:
        return False, None


# -- watching exchanges (the test suite's contract check) --------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as the simulator served it."""

    method: str
    path: str
    request: bytes
    status: int
    answer: Any  # the JSON answer object (None: empty or not JSON)
    dropped: bool = False
    played: bool = False  # a hostile answer written by hand: not HubSpot's, not checked
    content_type: str = "application/json"
    fault: Any = None


#: Called with every exchange of every simulator in this process (the pytest plugin adds one).
observers: list[Any] = []


def notify(exchange: Exchange) -> None:
    """Hand ``exchange`` to every observer."""
    for observer in tuple(observers):  # a copy: observers may come and go meanwhile
        observer(exchange)


def violations(exchange: Exchange, check_requests: bool = True) -> tuple[Operation | None, list[str]]:
    """The exchange's operation and how its request (if ``check_requests``) and answer leave the contract."""
    op = operation(exchange.method, exchange.path)
    if op is None:
        return None, []
    found: list[str] = []
    # A hostile answer (hostile.py) is no HubSpot answer to the request, so neither side is checked.
    if check_requests and op.request is not None and not exchange.played:
        parsed, body = parse_body(exchange.request)
        if parsed:
            found += [f"request {p}" for p in check_request(op, body)]
        elif exchange.request:
            found.append("request (body): not JSON")
    json_answer = "json" in exchange.content_type
    if not (exchange.dropped or exchange.played or exchange.status == 0) and (json_answer or exchange.status < 300):
        found += [f"answer {exchange.status} {p}" for p in check_answer(op, exchange.status, exchange.answer)]
    return op, found
