"""Resolve a stream to the HubSpot object type and unique id property it upserts into."""

from __future__ import annotations

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


@dataclass(frozen=True)
class ObjectTarget:
    """Where a stream's records go."""

    stream: str
    object_type: str
    id_property: str

    @property
    def canonical_type(self) -> str:
        """Object type name used to tell two aliases (`0-1`, `contacts`) apart as one object."""
        return _ID_TO_NAME.get(self.object_type, self.object_type)


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


def mapping_problems(object_mappings: Any) -> list[str]:  # noqa: ANN401 - raw config
    """List every problem in the `object_mappings` setting (empty when it is valid)."""
    problems: list[str] = []
    if object_mappings is None:
        return problems
    if not isinstance(object_mappings, dict):
        return ["object_mappings: must be an object keyed by stream name"]
    for stream, entry in object_mappings.items():
        where = f"object_mappings['{stream}']"
        if not isinstance(entry, dict):
            problems.append(
                f'{where}: must be an object like {{"object_type": "contacts", '
                f'"id_property": "email"}}'
            )
            continue
        unknown = sorted(set(entry) - {"object_type", "id_property"})
        if unknown:
            problems.append(
                f"{where}: unknown key(s) {', '.join(unknown)}; "
                "allowed keys are object_type and id_property"
            )
        object_type = entry.get("object_type", stream)
        if (why := object_type_problem(object_type)) is not None:
            problems.append(f"{where}.object_type: {why}")
        id_property = entry.get("id_property")
        if id_property is not None and (
            not isinstance(id_property, str) or not _PROPERTY_NAME.match(id_property)
        ):
            problems.append(f"{where}.id_property: must be a HubSpot property name")
        if id_property == "hs_object_id":
            problems.append(
                f"{where}.id_property: HubSpot rejects hs_object_id as an upsert id "
                "property; use a property with unique values"
            )
    return problems


def resolve_stream(stream: str, object_mappings: Mapping[str, Mapping[str, Any]] | None) -> ObjectTarget:
    """Resolve `stream` to its object type and id property.

    Raises:
        HubSpotConfigError: when the stream has no usable object type or id property.
    """
    from target_hubspot_upsert.errors import HubSpotConfigError  # noqa: PLC0415 - avoid SDK import at module load

    entry = (object_mappings or {}).get(stream) or {}
    object_type = entry.get("object_type") or stream
    if object_type_problem(object_type) is not None:
        msg = (
            f"Stream '{stream}' does not name a HubSpot object type. Add an entry to the "
            f'object_mappings setting, e.g. {{"{stream}": {{"object_type": "contacts", '
            f'"id_property": "email"}}}}.'
        )
        raise HubSpotConfigError(msg)
    canonical = _ID_TO_NAME.get(object_type, object_type)
    id_property = entry.get("id_property") or DEFAULT_ID_PROPERTIES.get(canonical)
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
    if not id_property:
        msg = (
            f"Stream '{stream}' upserts into HubSpot object '{object_type}', which has no "
            "default id property. Set object_mappings."
            f'{stream}.id_property to a unique property, e.g. {{"{stream}": '
            f'{{"object_type": "{object_type}", "id_property": "<unique property>"}}}}.'
        )
        raise HubSpotConfigError(msg)
    return ObjectTarget(stream=stream, object_type=object_type, id_property=id_property)
