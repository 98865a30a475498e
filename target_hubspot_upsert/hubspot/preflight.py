"""Pre-flight: read each object's property catalogue, plan a stream's serialization, create properties.

Redone for every SCHEMA (a changed SCHEMA gets a new plan); catalogues are read once per object
type per run. Knows HubSpot's property API through the client, nothing of Singer.
"""

from __future__ import annotations

import decimal
import difflib
import functools
import logging
import re
from collections.abc import Mapping
from typing import Any

from target_hubspot_upsert.core.errors import HubSpotConfigError, HubSpotFatalError
from target_hubspot_upsert.core.mapping import STANDARD_OBJECTS, ObjectTarget
from target_hubspot_upsert.core.model import json_list
from target_hubspot_upsert.core.settings import Settings
from target_hubspot_upsert.hubspot.client import HubSpotClient
from target_hubspot_upsert.hubspot.dryrun import check_object_access
from target_hubspot_upsert.hubspot.serialization import (
    IGNORE,
    FieldDecision,
    PropertySpec,
    StreamPlan,
    build_plan,
    derive_property_definition,
)

logger = logging.getLogger("target_hubspot_upsert")
HUBSPOT_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _schema_of(value: Any) -> dict[str, Any]:  # noqa: ANN401 - any JSON value
    """A JSON schema for a value, to create a property for a field no SCHEMA declares."""
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int | float | decimal.Decimal):
        return {"type": "number"}
    if isinstance(value, dict):
        return {"type": "object"}
    return {"type": "string"}


def _finds_objects(canonical_type: str, name: str, spec: PropertySpec) -> bool:
    """HubSpot finds objects by a property with unique values, or a contact by its email."""
    return spec.unique or (canonical_type == "contacts" and name == "email")


def _verb(target: ObjectTarget) -> str:
    return {"update": "updates", "create": "creates"}.get(target.write_mode, "upserts")


class Preflight:
    """Catalogues, per-stream plans and property creation for one run."""

    def __init__(
        self, client: HubSpotClient, settings: Settings, searched_links: set[tuple[str, str]] | None = None,
    ) -> None:
        """Nothing is read until a stream needs it.

        `searched_links` gets the (object type, property) of associations whose `to_id_property`
        is not unique: those objects are found through search (see matching.py).
        """
        self.client = client
        self.settings = settings
        self.searched_links = searched_links
        self._catalogs: dict[str, dict[str, PropertySpec]] = {}
        self._groups_checked: set[str] = set()
        self._warned: set[tuple[str, str, str]] = set()

    def property_type(self, target: ObjectTarget, name: str) -> str | None:
        """HubSpot's type of a property already in the catalogue (`number`, `datetime`, ...), or None."""
        spec = self._catalogs.get(target.canonical_type, {}).get(name)
        return spec.type if spec is not None else None

    def catalog(self, target: ObjectTarget) -> dict[str, PropertySpec]:
        """The object's property catalogue, fetched once per object type per run."""
        key = target.canonical_type
        cached = self._catalogs.get(key)
        if cached is not None:
            return cached
        response = self.client.get_properties(target.object_type)
        if response.status != 200:
            message = response.message
            msg = (
                f"Could not read the properties of HubSpot object '{target.object_type}' "
                f"(stream '{target.stream}'): HTTP {response.status} {message}. Check "
                f"object_mappings.{target.stream}.object_type{self._object_type_hint(target.object_type)}."
            )
            raise HubSpotConfigError(msg)
        results = response.body.get("results", []) if isinstance(response.body, dict) else []
        catalog = {
            str(p["name"]): PropertySpec.from_hubspot(p)
            for p in results
            if isinstance(p, dict) and p.get("name") and not p.get("archived")
        }
        self._catalogs[key] = catalog
        return catalog

    def _object_type_hint(self, object_type: str) -> str:
        """`: did you mean 'companies'?` from HubSpot's standard objects and the account's custom ones."""
        names = {name: name for name in STANDARD_OBJECTS}
        try:
            response = self.client.get_schemas()
        except HubSpotFatalError:  # no scope to read schemas, or no answer: standard names only
            response = None
        results = response.body.get("results") if response is not None and isinstance(response.body, dict) else None
        for schema in results if isinstance(results, list) else []:
            if isinstance(schema, dict) and isinstance(schema.get("name"), str):
                shown = str(schema.get("fullyQualifiedName") or schema["name"])
                names[schema["name"].lower()] = shown
                names[shown.lower()] = shown
        close = difflib.get_close_matches(object_type.strip().lower(), list(names), n=3, cutoff=0.6)
        suggestions = list(dict.fromkeys(names[c] for c in close))
        if not suggestions:
            return ""
        return " (did you mean " + " or ".join(f"'{s}'" for s in suggestions) + "?)"

    @staticmethod
    def unique_properties(target: ObjectTarget, catalog: Mapping[str, PropertySpec]) -> str:
        """`Its unique properties: a, b` (or that it has none), for a message about the id property."""
        names = sorted(n for n, spec in catalog.items() if _finds_objects(target.canonical_type, n, spec))
        if not names:
            return (
                f"HubSpot object '{target.object_type}' has no property with unique values: create one "
                "(Settings, Properties, with 'Require unique values'), or use write_mode create."
            )
        return f"Its unique properties: {', '.join(names)}."

    def _warn_once(self, object_type: str, prop: str, kind: str, message: str) -> None:
        key = (object_type, prop, kind)
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    def plan_for(self, target: ObjectTarget, schema: Mapping[str, Any]) -> StreamPlan:
        """Check a stream's fields against its object and compile its serializer."""
        properties: Mapping[str, Any] = schema.get("properties") or {}
        fields = list(properties)
        catalog = self.catalog(target)
        policy = self.settings.unknown_properties
        id_property = target.id_property
        if id_property and id_property not in properties:
            setting = "match_property" if target.match_property else "id_property"
            msg = (
                f"Stream '{target.stream}' has no field '{id_property}', the {setting.replace('_', ' ')} it "
                f"{_verb(target)} '{target.object_type}' by. Add the field, rename one with stream_maps, "
                f"or set object_mappings.{target.stream}.{setting}."
            )
            raise HubSpotConfigError(msg)
        self._check_associations(target, properties)
        build = functools.partial(
            build_plan, fields, catalog, id_property, clear_nulls=self.settings.clear_nulls,
            resolve_undeclared=functools.partial(self._decide_undeclared, target, policy),
            exclude=frozenset(spec.field for spec in target.associations),
        )
        plan = build()
        if plan.unknown and policy == "create":
            self._create_properties(target, plan.unknown, properties, catalog)
            plan = build()
        if id_property:
            if id_property not in catalog and id_property not in plan.unknown:
                plan.unknown.append(id_property)
            self._check_id_property(target, catalog)
        self._report_unknown(target, plan, policy)
        return plan

    def check_object(self, target: ObjectTarget) -> None:
        """A stream's object type, id property, associations and read access, before any record (dry runs)."""
        catalog = self.catalog(target)
        if target.match_property and target.match_property not in catalog:
            msg = (
                f"HubSpot object '{target.object_type}' has no property '{target.match_property}', the "
                f"match_property of stream '{target.stream}'. Set object_mappings.{target.stream}.match_property "
                "to one of its properties."
            )
            raise HubSpotConfigError(msg)
        if target.id_property and target.id_property not in catalog:
            msg = (
                f"HubSpot object '{target.object_type}' has no property '{target.id_property}', the id "
                f"property of stream '{target.stream}'. Set object_mappings.{target.stream}.id_property "
                f"to one of its unique properties. {self.unique_properties(target, catalog)}"
            )
            raise HubSpotConfigError(msg)
        if target.id_property:
            self._check_id_property(target, catalog)
        self._check_association_targets(target)
        check_object_access(self.client, target)

    @staticmethod
    def _check_id_property(target: ObjectTarget, catalog: Mapping[str, PropertySpec]) -> None:
        """HubSpot writes by a property with unique values only (or a contact's email)."""
        id_property = target.id_property
        id_spec = catalog.get(id_property)
        if target.match_property:
            return  # found through search: need not be unique
        if id_spec is None or _finds_objects(target.canonical_type, id_property, id_spec):
            return
        msg = (
            f"HubSpot property '{id_property}' of '{target.object_type}' does not have unique "
            f"values, so HubSpot cannot {target.write_mode} by it (stream '{target.stream}'). Set "
            f"object_mappings.{target.stream}.id_property to a unique property, or use match_property "
            f"instead of id_property to find objects by '{id_property}' through search. "
            + Preflight.unique_properties(target, catalog)
        )
        raise HubSpotConfigError(msg)

    def _report_unknown(self, target: ObjectTarget, plan: StreamPlan, policy: str) -> None:
        """SCHEMA fields the object lacks: stop (fail), or warn once each (ignore); read-only ones."""
        if plan.unknown:
            if policy == "fail" or (target.id_property and target.id_property in plan.unknown):
                names = ", ".join(f"'{name}'" for name in plan.unknown)
                msg = (
                    f"Stream '{target.stream}' has field(s) {names} that are not properties of "
                    f"HubSpot object '{target.object_type}'; no record with them is sent. "
                    "Either map them to existing properties (or drop them) with stream_maps, set "
                    "unknown_properties to 'ignore' to leave them out, or set it to 'create' to "
                    "create them in HubSpot."
                )
                raise HubSpotConfigError(msg)
            for name in plan.unknown:
                self._warn_once(
                    target.canonical_type, name, "unknown",
                    f"Field '{name}' of stream '{target.stream}' is not a property of "
                    f"'{target.object_type}'; leaving it out (unknown_properties=ignore).",
                )
        for name in plan.read_only:
            self._warn_read_only(target, name)

    def _warn_read_only(self, target: ObjectTarget, name: str) -> None:
        self._warn_once(
            target.canonical_type, name, "read_only",
            f"Property '{name}' of '{target.object_type}' is read-only or calculated in "
            f"HubSpot; stream '{target.stream}' never sends it.",
        )

    def _check_associations(self, target: ObjectTarget, properties: Mapping[str, Any]) -> None:
        """A stream's association fields are in its SCHEMA (a warning), and their targets are usable."""
        for spec in target.associations:
            if spec.field not in properties:
                self._warn_once(
                    target.canonical_type, spec.field, f"association:{target.stream}",
                    f"Stream '{target.stream}' has no field '{spec.field}' in its SCHEMA "
                    f"(object_mappings.{target.stream}.{spec.where}.field); records without it get no association.",
                )
        self._check_association_targets(target)

    def _check_association_targets(self, target: ObjectTarget) -> None:
        """Each association's other object type exists and is looked up by a unique property."""
        for spec in target.associations:
            where = f"object_mappings.{target.stream}.{spec.where}"
            other = ObjectTarget(stream=target.stream, object_type=spec.to_object_type, id_property=spec.to_id_property)
            try:
                catalog = self.catalog(other)
            except HubSpotConfigError:
                msg = f"{where}.to_object_type: HubSpot has no object type '{spec.to_object_type}'."
                raise HubSpotConfigError(msg) from None
            if spec.to_id_property == "hs_object_id":
                continue  # the field holds HubSpot record ids
            prop = catalog.get(spec.to_id_property)
            finds = prop is not None and _finds_objects(other.canonical_type, spec.to_id_property, prop)
            if prop is not None and not finds and self.searched_links is not None:
                self.searched_links.add((other.canonical_type, spec.to_id_property))  # found through search
                continue
            if prop is None or not _finds_objects(other.canonical_type, spec.to_id_property, prop):
                what = "is not a property" if prop is None else "does not have unique values"
                msg = (
                    f"{where}.to_id_property: '{spec.to_id_property}' {what} of HubSpot object "
                    f"'{spec.to_object_type}', so objects cannot be found by it. Use a property with unique "
                    "values (contacts may also use email), or hs_object_id when the field holds record ids."
                )
                raise HubSpotConfigError(msg)

    def _decide_undeclared(self, target: ObjectTarget, policy: str, key: str, value: Any) -> FieldDecision:  # noqa: ANN401
        """A record field outside its stream's SCHEMA, seen for the first time: as a SCHEMA field would be."""
        if key.startswith("_sdc_"):
            return IGNORE  # Singer metadata columns are not HubSpot properties
        catalog = self.catalog(target)
        spec = catalog.get(key)
        if spec is None and policy == "create" and HUBSPOT_PROPERTY_NAME.match(key):
            self._create_properties(target, [key], {key: _schema_of(value)}, catalog)
            spec = catalog.get(key)
        where = f"Field '{key}' of stream '{target.stream}' is not in the stream's SCHEMA"
        if spec is not None and not spec.read_only:
            self._warn_once(
                target.canonical_type, key, f"undeclared:{target.stream}",
                f"{where}; it is sent as HubSpot property '{key}' of '{target.object_type}' "
                f"(type {spec.type}). Add it to the tap's SCHEMA to silence this warning.",
            )
            return key, spec.converter()
        if spec is not None:
            self._warn_read_only(target, key)
            return IGNORE
        if policy == "ignore":
            self._warn_once(
                target.canonical_type, key, f"undeclared:{target.stream}",
                f"{where} nor a property of '{target.object_type}'; leaving it out "
                "(unknown_properties=ignore).",
            )
            return IGNORE
        if policy == "create":
            return (
                f"field '{key}' is not in the stream's SCHEMA and cannot become a HubSpot property "
                "name (lowercase letters, digits and underscores, starting with a letter); rename "
                "or drop it with stream_maps"
            )
        return (
            f"field '{key}' is not in the stream's SCHEMA and is not a property of HubSpot object "
            f"'{target.object_type}' (unknown_properties is 'fail'): drop or rename it with "
            "stream_maps, create the property in HubSpot, or set unknown_properties to 'ignore' "
            "or 'create'"
        )

    def _create_properties(
        self, target: ObjectTarget, names: list[str], schema_properties: Mapping[str, Any],
        catalog: dict[str, PropertySpec],
    ) -> None:
        group = self.settings.property_group
        bad_names = [n for n in names if not HUBSPOT_PROPERTY_NAME.match(n)]
        if bad_names:
            msg = (
                f"Stream '{target.stream}' field(s) {', '.join(repr(n) for n in bad_names)} cannot "
                "become HubSpot property names (lowercase letters, digits and underscores, "
                "starting with a letter). Rename them with stream_maps."
            )
            raise HubSpotConfigError(msg)
        self._ensure_group(target, group)
        for name in names:
            definition = derive_property_definition(name, schema_properties.get(name) or {})
            definition["groupName"] = group
            if name == target.id_property:
                definition["hasUniqueValue"] = True
            if self.settings.dry_run:  # a dry run never changes HubSpot: it says what a real run would do
                logger.info(
                    "Dry run: would create property '%s' (%s, field type %s) on %s in group '%s'%s.",
                    name, definition["type"], definition["fieldType"], target.object_type, group,
                    ", with unique values" if definition.get("hasUniqueValue") else "",
                )
                catalog[name] = PropertySpec.from_hubspot(definition)
                continue
            response = self.client.create_property(target.object_type, definition)
            if response.status == 409:
                logger.info("Property '%s' of '%s' already exists.", name, target.object_type)
                created = {**definition}
            elif response.status in (200, 201):
                created = response.body if isinstance(response.body, dict) else definition
                logger.info(
                    "Created HubSpot property '%s' on '%s' (type %s, field type %s, group %s)%s.",
                    name, target.object_type, definition["type"], definition["fieldType"], group,
                    ", with unique values" if definition.get("hasUniqueValue") else "",
                )
            else:
                message = response.message
                msg = (
                    f"HubSpot refused to create property '{name}' on '{target.object_type}' "
                    f"(HTTP {response.status}): {message}"
                )
                raise HubSpotConfigError(msg)
            catalog[name] = PropertySpec.from_hubspot({**definition, **created})

    def _ensure_group(self, target: ObjectTarget, group: str) -> None:
        key = f"{target.canonical_type}/{group}"
        if key in self._groups_checked:
            return
        response = self.client.get_groups(target.object_type)
        names = set()
        if response.status == 200 and isinstance(response.body, dict):
            names = {g.get("name") for g in json_list(response.body.get("results")) if isinstance(g, dict)}
        if group not in names and self.settings.dry_run:
            logger.info("Dry run: would create property group '%s' on %s.", group, target.object_type)
        elif group not in names:
            created = self.client.create_group(target.object_type, group, "Target HubSpot Upsert")
            if created.status not in (200, 201, 409):
                message = created.body.get("message") if isinstance(created.body, dict) else ""
                msg = (
                    f"Could not create property group '{group}' on '{target.object_type}' "
                    f"(HTTP {created.status}): {message}. Set property_group to an existing group."
                )
                raise HubSpotConfigError(msg)
            logger.info("Created property group '%s' on '%s'.", group, target.object_type)
        self._groups_checked.add(key)
