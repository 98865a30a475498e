"""Resolve a stream to the HubSpot object type, id property, write mode and associations it loads with."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Standard object names HubSpot accepts in CRM object paths, with their object type ids.
STANDARD_OBJECTS: dict[str, str] = {
    "contacts": "0-1",
    "companies": "0-2",
    "deals": "0-3",
    "tickets": "0-5",
    "products": "0-7",
    "line_items": "0-8",
    "subscriptions": "0-69",
    "calls": "0-48",
    "emails": "0-49",
    "meetings": "0-47",
    "notes": "0-46",
    "tasks": "0-27",
    "quotes": "0-14",
    "feedback_submissions": "0-19",
    "leads": "0-136",
    "goal_targets": "0-74",
    "appointments": "0-421",
    "courses": "0-410",
    "listings": "0-420",
    "services": "0-162",
    "orders": "0-123",
    "carts": "0-142",
    "invoices": "0-53",
    "partner_clients": "0-973",
    "users": "0-115",
}
_ID_TO_NAME = {v: k for k, v in STANDARD_OBJECTS.items()}

# Only contacts have a built-in unique property usable for upsert. Company `domain` is
# contradictory in public sources, so no default is assumed for companies.
DEFAULT_ID_PROPERTIES: dict[str, str] = {"contacts": "email"}

_OBJECT_TYPE_ID = re.compile(r"^\d+-\d+$")
_OBJECT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_CUSTOM_NAME = re.compile(r"^p\d*_[A-Za-z0-9_]+$")
_PROPERTY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


WRITE_MODES = ("upsert", "update", "create")
ON_MULTIPLE_MATCHES = ("reject", "update_all", "oldest")
ASSOCIATION_KEYS = ("field", "to_object_type", "to_id_property", "label")


def canonical_type(object_type: str) -> str:
    """Object type name used to tell two aliases (`0-1`, `contacts`) apart as one object."""
    return _ID_TO_NAME.get(object_type, object_type)


@dataclass(frozen=True)
class AssociationSpec:
    """One `object_mappings.<stream>.associations[i]` entry: link each record's object to others."""

    index: int
    field: str
    to_object_type: str
    to_id_property: str
    label: str | int | None = None

    @property
    def to_key(self) -> str:
        """The other object type's canonical name."""
        return canonical_type(self.to_object_type)

    @property
    def where(self) -> str:
        """Where the entry is in the config, for messages."""
        return f"associations[{self.index}]"


@dataclass(frozen=True)
class ObjectTarget:
    """Where a stream's records go, and how they are written."""

    stream: str
    object_type: str
    id_property: str  # "" for a `create` stream of an object without unique property
    write_mode: str = "upsert"
    associations: tuple[AssociationSpec, ...] = ()
    # match_property: objects are found by a property that need not be unique, through search
    # (`id_property` then names the same property: the record field the values come from).
    match_property: str = ""
    on_multiple_matches: str = "reject"

    @property
    def canonical_type(self) -> str:
        """Object type name used to tell two aliases (`0-1`, `contacts`) apart as one object."""
        return canonical_type(self.object_type)


def object_type_problem(object_type: Any) -> str | None:  # noqa: ANN401 - config values are untyped
    """Return why `object_type` is not an accepted object type form, or None when it is."""
    if not isinstance(object_type, str) or not object_type:
        return "must be a non-empty string"
    if (
        _OBJECT_TYPE_ID.match(object_type)
        or _CUSTOM_NAME.match(object_type)
        or _OBJECT_NAME.match(object_type)
    ):
        return None
    return (
        f"'{object_type}' is not a HubSpot object type: use an object name such as "
        "'contacts' or 'line_items', an object type id such as '0-1' or '2-1234567', "
        "or a custom object name such as 'p_widgets'"
    )


_ENTRY_KEYS = ("object_type", "id_property", "match_property", "on_multiple_matches", "write_mode", "associations")


def mapping_problems(object_mappings: Any) -> list[str]:  # noqa: ANN401 - raw config
    """List every problem in the `object_mappings` setting (empty when it is valid)."""
    if object_mappings is None:
        return []
    if not isinstance(object_mappings, dict):
        return ["object_mappings: must be an object keyed by stream name"]
    problems: list[str] = []
    for stream, entry in object_mappings.items():
        if not isinstance(entry, dict):
            problems.append(
                f'object_mappings[\'{stream}\']: must be an object like {{"object_type": "contacts", '
                f'"id_property": "email"}}'
            )
            continue
        problems.extend(_entry_problems(stream, entry))
        write_mode = entry.get("write_mode", "upsert")
        if write_mode not in WRITE_MODES:
            problems.append(
                f"object_mappings.{stream}.write_mode: must be one of upsert, update or create; got {write_mode!r}"
            )
        problems.extend(association_problems(stream, entry.get("associations")))
    return problems


def _entry_problems(stream: str, entry: dict[str, Any]) -> list[str]:
    """Unknown keys, the object type and the id property of one stream's entry."""
    where = f"object_mappings['{stream}']"
    problems: list[str] = []
    unknown = sorted(set(entry) - set(_ENTRY_KEYS))
    if unknown:
        shown = []
        for key in unknown:
            close = difflib.get_close_matches(key, _ENTRY_KEYS, n=1)
            shown.append(f"{key} (did you mean {close[0]}?)" if close else key)
        problems.append(
            f"{where}: unknown key(s) {', '.join(shown)}; "
            "allowed keys are object_type, id_property, match_property, on_multiple_matches, write_mode "
            "and associations"
        )
    object_type = entry.get("object_type", stream)
    if (why := object_type_problem(object_type)) is not None:
        problems.append(f"{where}.object_type: {why}")
    id_property = entry.get("id_property")
    if id_property is not None and not _is_property_name(id_property):
        problems.append(f"{where}.id_property: must be a HubSpot property name")
    if id_property == "hs_object_id":
        problems.append(
            f"{where}.id_property: HubSpot rejects hs_object_id as an upsert id "
            "property; use a property with unique values"
        )
    problems.extend(_match_problems(where, entry))
    return problems


def _match_problems(where: str, entry: dict[str, Any]) -> list[str]:
    """`match_property` and `on_multiple_matches` of one stream's entry."""
    problems: list[str] = []
    match_property = entry.get("match_property")
    if match_property is not None:
        if not _is_property_name(match_property):
            problems.append(f"{where}.match_property: must be a HubSpot property name")
        elif match_property == "hs_object_id":
            problems.append(
                f"{where}.match_property: use a property other than hs_object_id (record ids need no search)"
            )
        if entry.get("id_property") is not None:
            problems.append(
                f"{where}: id_property and match_property exclude each other; use id_property for a property "
                "with unique values (HubSpot's batch upsert), match_property for one that need not be unique "
                "(objects found through search)"
            )
    policy = entry.get("on_multiple_matches")
    if policy is not None:
        if policy not in ON_MULTIPLE_MATCHES:
            problems.append(
                f"{where}.on_multiple_matches: must be one of reject, update_all or oldest; got {policy!r}"
            )
        elif match_property is None:
            problems.append(f"{where}.on_multiple_matches: applies only with match_property")
    return problems


def _is_property_name(value: Any) -> bool:  # noqa: ANN401 - config values are untyped
    return isinstance(value, str) and _PROPERTY_NAME.match(value) is not None


def association_problems(stream: str, associations: Any) -> list[str]:  # noqa: ANN401 - raw config
    """Problems of one stream's `associations` list, each naming `object_mappings.<stream>.associations[i]`."""
    if associations is None:
        return []
    where = f"object_mappings.{stream}.associations"
    if not isinstance(associations, list):
        example = '{"field": "company_ref", "to_object_type": "companies", "to_id_property": "company_external_id"}'
        return [f"{where}: must be a list of objects like {example}"]
    problems: list[str] = []
    for index, item in enumerate(associations):
        here = f"{where}[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{here}: must be an object with field, to_object_type, to_id_property and optional label")
            continue
        unknown = sorted(set(item) - set(ASSOCIATION_KEYS))
        if unknown:
            problems.append(
                f"{here}: unknown key(s) {', '.join(unknown)}; allowed keys are field, to_object_type, "
                "to_id_property and label"
            )
        missing = [k for k in ASSOCIATION_KEYS[:3] if k not in item]
        if missing:
            problems.append(f"{here}: missing {', '.join(missing)}")
        if "field" in item and not (isinstance(item["field"], str) and item["field"].strip()):
            problems.append(f"{here}.field: must be the name of the record field holding the other object's value")
        if "to_object_type" in item and (why := object_type_problem(item["to_object_type"])) is not None:
            problems.append(f"{here}.to_object_type: {why}")
        if "to_id_property" in item and not _is_property_name(item["to_id_property"]):
            problems.append(
                f"{here}.to_id_property: must be a HubSpot property name (a unique property, or hs_object_id)"
            )
        problems.extend(_label_problems(here, item.get("label")))
    return problems


def _label_problems(here: str, label: Any) -> list[str]:  # noqa: ANN401 - raw config
    if label is None:
        return []
    if isinstance(label, bool) or not isinstance(label, str | int):
        return [f"{here}.label: must be a label name (text) or an association type id (a whole number)"]
    if isinstance(label, int) and label < 1:
        return [f"{here}.label: an association type id is a whole number of at least 1; got {label}"]
    if isinstance(label, str) and not label.strip():
        return [f"{here}.label: must not be empty; leave it out for HubSpot's default association"]
    return []


def _association_specs(entry: Mapping[str, Any]) -> tuple[AssociationSpec, ...]:
    return tuple(
        AssociationSpec(
            index=index,
            field=item["field"],
            to_object_type=item["to_object_type"],
            to_id_property=item["to_id_property"],
            label=item.get("label"),
        )
        for index, item in enumerate(entry.get("associations") or [])
    )


def resolve_stream(stream: str, object_mappings: Mapping[str, Mapping[str, Any]] | None) -> ObjectTarget:
    """Resolve `stream` to its object type, id property, write mode and associations.

    Raises:
        HubSpotConfigError: when the stream has no usable object type or id property.
    """
    from target_hubspot_upsert.core.errors import HubSpotConfigError  # noqa: PLC0415 - avoid SDK import at module load

    entry = (object_mappings or {}).get(stream) or {}
    object_type = entry.get("object_type") or stream
    if object_type_problem(object_type) is not None:
        msg = (
            f"Stream '{stream}' does not name a HubSpot object type. Add an entry to the "
            f'object_mappings setting, e.g. {{"{stream}": {{"object_type": "contacts", '
            f'"id_property": "email"}}}}.'
        )
        raise HubSpotConfigError(msg)
    canonical = canonical_type(object_type)
    match_property = entry.get("match_property") or ""
    id_property = match_property or entry.get("id_property") or DEFAULT_ID_PROPERTIES.get(canonical)
    write_mode = entry.get("write_mode") or "upsert"
    known = (
        canonical in STANDARD_OBJECTS or _OBJECT_TYPE_ID.match(object_type) or _CUSTOM_NAME.match(object_type)
    )
    if not entry and not known:
        msg = (
            f"Stream '{stream}' is not named after a HubSpot object (such as contacts, "
            "companies, deals, tickets, or a custom object's p_<name> or 2-<id>) and has no "
            "object_mappings entry. Add one naming the object and its unique id property, e.g. "
            f'{{"{stream}": {{"object_type": "companies", "id_property": "<unique property>"}}}}.'
        )
        raise HubSpotConfigError(msg)
    if not id_property and write_mode != "create":
        verb = "updates" if write_mode == "update" else "upserts into"
        msg = (
            f"Stream '{stream}' {verb} HubSpot object '{object_type}', which has no "
            "default id property. Set object_mappings."
            f'{stream}.id_property to a unique property, e.g. {{"{stream}": '
            f'{{"object_type": "{object_type}", "id_property": "<unique property>"}}}}'
            + (", or set its write_mode to create (objects without a unique property, such as notes, "
               "can only be created)." if write_mode == "upsert" else ".")
        )
        raise HubSpotConfigError(msg)
    return ObjectTarget(
        stream=stream, object_type=object_type, id_property=id_property or "", write_mode=write_mode,
        associations=_association_specs(entry), match_property=match_property,
        on_multiple_matches=entry.get("on_multiple_matches") or "reject",
    )
