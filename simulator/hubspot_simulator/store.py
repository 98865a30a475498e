"""Object types and stored objects: the simulator's CRM data, with an index per unique property."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from .associations_store import AssociationLinks, AssociationType, AssociationTypes
from .catalog import ObjectTypeSpec, default_object_types
from .responses import now_iso
from .search import note_write
from .validation import K_MULTI, compile_validator

Conflict = tuple[int, str, str]  # (input index, property, message)


def singular(name: str) -> str:
    """``companies`` -> ``company``, ``contacts`` -> ``contact``."""
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name.removesuffix("s")


class ObjectType:
    """A compiled, immutable view of an :class:`ObjectTypeSpec` (replaced on change)."""

    __slots__ = (
        "created",
        "enum_name",
        "groups",
        "id_props",
        "label",
        "modified",
        "multi_props",
        "name",
        "props",
        "spec",
        "validators",
    )

    def __init__(self, spec: ObjectTypeSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.label = singular(spec.name).replace("_", " ").capitalize()  # "Contact", "Line item"
        self.enum_name = singular(spec.name).upper()  # "CONTACT", as HubSpot names types in messages
        self.props: dict[str, dict[str, Any]] = {p["name"]: p for p in spec.properties}
        is_contacts = spec.name == "contacts"
        self.validators = {n: compile_validator(p, is_contacts and n == "email") for n, p in self.props.items()}
        unique = {n for n, p in self.props.items() if p.get("hasUniqueValue")}
        # Contacts can also be upserted by email, which is not flagged unique in the catalogue.
        self.id_props = frozenset(unique | ({"email"} if is_contacts and "email" in self.props else set()))
        self.multi_props = frozenset(n for n, (k, _) in self.validators.items() if k == K_MULTI)
        self.groups = {g["name"]: g for g in spec.groups}
        self.created = spec.created_property
        self.modified = spec.modified_property

    def key(self, id_property: str, value: str) -> str:
        """The index key of a unique value (emails match case-insensitively)."""
        return value.lower() if id_property == "email" else value


class StoredObject:
    """One CRM object: its record id, property values and timestamps."""

    __slots__ = ("created_at", "id", "properties", "updated_at")

    def __init__(self, oid: str, now: str) -> None:
        self.id = oid
        self.properties: dict[str, str] = {}
        self.created_at = now
        self.updated_at = now

    def to_dict(self) -> dict[str, Any]:
        """The object as :meth:`HubSpotSimulator.objects` returns it."""
        return {
            "id": self.id,
            "properties": dict(self.properties),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    def result(
        self, now: str, new: bool | None = None, properties: Iterable[str] | None = None, archived: bool = False
    ) -> dict[str, Any]:
        """The object as a batch endpoint answers it (all properties, or only the named ones)."""
        props = self.properties
        out: dict[str, Any] = {
            "id": self.id,
            "properties": props.copy() if properties is None else {p: props.get(p) for p in properties},
            "createdAt": self.created_at,
            "updatedAt": now,
            "archived": archived,
        }
        if new is not None:
            out["new"] = new
        return out


class Store:
    """Objects of one type, with an index per unique (idProperty-capable) property."""

    __slots__ = ("archived", "clock", "history", "index", "objects")

    def __init__(self, history: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.objects: dict[str, StoredObject] = {}
        self.archived: dict[str, StoredObject] = {}
        self.index: dict[str, dict[str, str]] = {}
        # Search index lag: record id -> [(monotonic time, properties)] of recent writes (None: no lag).
        self.history: dict[str, list[tuple[float, dict[str, str]]]] | None = {} if history else None

    def lookup(self, ot: ObjectType, id_property: str, value: str) -> StoredObject | None:
        """The live object whose ``id_property`` holds ``value`` (record id for ``hs_object_id``)."""
        if id_property == "hs_object_id":
            return self.objects.get(value)
        oid = self.index.get(id_property, {}).get(ot.key(id_property, value))
        return self.objects.get(oid) if oid is not None else None


class Database:
    """Every object type, its stored objects and its validation rules.

    ``catalog_lock`` guards the types (replaced copy-on-write, so readers keep a snapshot);
    ``store_lock`` guards the objects and indexes.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.store_lock = threading.Lock()
        self.catalog_lock = threading.Lock()
        self.search_history = False  # keep recent writes for search's index lag
        self.clock = clock  # the simulator's clock (search's index lag)
        self.reset()

    def set_search_history(self, on: bool) -> None:
        """Start (or stop) keeping recent writes, which search's index lag shows (callers hold store_lock)."""
        self.search_history = on
        for store in self.stores.values():
            if on and store.history is None:
                store.history = {}
            elif not on:
                store.history = None

    def reset(self) -> None:
        """Back to the default object types, with no objects (callers hold both locks)."""
        self.types: dict[str, ObjectType] = {}
        self.aliases: dict[str, str] = {}
        self.stores: dict[str, Store] = {}
        self.rules: dict[str, list[tuple[str, str, str]]] = {}
        self.association_types = AssociationTypes()
        self.links = AssociationLinks()
        self.next_id = 1
        for spec in default_object_types():
            self.register_type(spec)

    def register_type(self, spec: ObjectTypeSpec) -> None:
        """Add or replace an object type; its objects are kept."""
        self.types[spec.name] = ObjectType(spec)
        for alias in spec.all_names:
            self.aliases[alias.lower()] = spec.name
        self.stores.setdefault(spec.name, Store(self.search_history, self.clock))

    def resolve(self, ref: str) -> ObjectType | None:
        """The object type of a name, type id or alias."""
        name = self.aliases.get(ref.lower())
        return self.types.get(name) if name is not None else None

    def resolve_or_raise(self, ref: str) -> ObjectType:
        """Like :meth:`resolve`, raising ``KeyError`` for an unknown type."""
        ot = self.resolve(ref)
        if ot is None:
            raise KeyError(f"Unable to infer object type from: {ref}")
        return ot

    def rules_of(self, ot: ObjectType) -> list[tuple[str, str, str]] | None:
        """A snapshot of the type's validation rules, or None."""
        with self.catalog_lock:
            rules = self.rules.get(ot.name)
            return list(rules) if rules else None

    # -- test helpers ---------------------------------------------------------------------

    def objects(self, ot: ObjectType, archived: bool = False) -> list[dict[str, Any]]:
        """Copies of the live (or the archived) objects of a type, in creation (archive) order."""
        with self.store_lock:
            store = self.stores[ot.name]
            return [o.to_dict() for o in (store.archived if archived else store.objects).values()]

    def find(self, ot: ObjectType, prop: str, value: str) -> dict[str, Any] | None:
        """A copy of the first live object whose ``prop`` equals ``value`` (emails: any case)."""
        wanted = ot.key(prop, value)
        with self.store_lock:
            store = self.stores[ot.name]
            if prop == "hs_object_id":
                obj = store.objects.get(value)
                return obj.to_dict() if obj else None
            for obj in store.objects.values():
                v = obj.properties.get(prop)
                if v is not None and ot.key(prop, v) == wanted:
                    return obj.to_dict()
        return None

    # -- writes (callers hold store_lock) -------------------------------------------------

    def new_object(self, ot: ObjectType, store: Store, now: str) -> StoredObject:
        """Create an empty object with the next record id."""
        oid = str(self.next_id)
        self.next_id += 1
        obj = StoredObject(oid, now)
        store.objects[oid] = obj
        obj.properties["hs_object_id"] = oid
        obj.properties[ot.created] = now
        return obj

    def upsert(
        self, ot: ObjectType, inputs: list[dict[str, Any]], all_or_nothing: bool
    ) -> tuple[list[dict[str, Any]], list[Conflict]]:
        """Apply validated upsert inputs.

        Returns:
            The HubSpot result objects, and the unique-value conflicts. Conflicting inputs
            are not written; with ``all_or_nothing`` nothing is written when there is any.
        """
        now = now_iso()
        results: list[dict[str, Any]] = []
        with self.store_lock:
            store = self.stores[ot.name]
            conflicts = unique_conflicts(ot, store.index, inputs)
            if conflicts and all_or_nothing:
                return results, conflicts
            skip = {c[0] for c in conflicts}
            for n, inp in enumerate(inputs):
                if skip and n in skip:
                    continue
                idp = inp["idProperty"]
                key = ot.key(idp, inp["id"])
                ix = store.index.setdefault(idp, {})
                oid = ix.get(key)
                new = oid is None
                if oid is None:
                    obj = self.new_object(ot, store, now)
                    obj.properties[idp] = key
                    ix[key] = obj.id
                else:
                    obj = store.objects[oid]
                apply_properties(ot, store, obj, inp["properties"], now, new=new, pinned=(idp, key))
                results.append(_with_trace(obj.result(now, new), inp))
        return results, conflicts


    def update(
        self, ot: ObjectType, inputs: list[dict[str, Any]], all_or_nothing: bool
    ) -> tuple[list[dict[str, Any]], list[Conflict], list[str]]:
        """Apply validated update inputs to existing objects.

        Returns:
            The results, the unique-value conflicts (as :meth:`upsert`) and the ids of
            inputs that address no live object (nothing is created for them).
        """
        now = now_iso()
        results: list[dict[str, Any]] = []
        with self.store_lock:
            store = self.stores[ot.name]
            targets = [store.lookup(ot, inp.get("idProperty") or "hs_object_id", inp["id"]) for inp in inputs]
            missing = [inp["id"] for inp, obj in zip(inputs, targets, strict=True) if obj is None]
            conflicts = unique_conflicts(ot, store.index, _by_record_id(inputs, targets))
            if conflicts and all_or_nothing:
                return results, conflicts, missing
            skip = {c[0] for c in conflicts}
            for n, (inp, obj) in enumerate(zip(inputs, targets, strict=True)):
                if obj is None or n in skip:
                    continue
                apply_properties(ot, store, obj, inp["properties"], now, new=False)
                results.append(_with_trace(obj.result(now), inp))
        return results, conflicts, missing

    def create(
        self, ot: ObjectType, inputs: list[dict[str, Any]], all_or_nothing: bool
    ) -> tuple[list[dict[str, Any]], list[tuple[int, str, str, str | None]], list[StoredObject | None]]:
        """Create objects from validated inputs, one after the other.

        Returns:
            The results; the conflicts ``(input index, property, message, existing id)``, each
            against an object that existed or that an earlier input created; and the created
            object per input (None when not created). With ``all_or_nothing`` any conflict
            leaves everything unwritten.
        """
        now = now_iso()
        with self.store_lock:
            store = self.stores[ot.name]
            if all_or_nothing:
                dry = unique_conflicts(ot, store.index, [{"properties": inp["properties"]} for inp in inputs])
                if dry:
                    n, prop, message = dry[0]
                    return [], [(n, prop, message, None)], [None] * len(inputs)
            results: list[dict[str, Any]] = []
            conflicts: list[tuple[int, str, str, str | None]] = []
            created: list[StoredObject | None] = []
            for n, inp in enumerate(inputs):
                unique = sorted(ot.id_props & inp["properties"].keys())
                clash = _first_conflict(ot, store.index, inp["properties"], unique, ("new", n), {})
                if clash is not None:
                    owner = store.index.get(clash[0], {}).get(ot.key(clash[0], inp["properties"][clash[0]]))
                    conflicts.append((n, clash[0], clash[1], owner))
                    created.append(None)
                    continue
                obj = self.new_object(ot, store, now)
                apply_properties(ot, store, obj, inp["properties"], now, new=True)
                created.append(obj)
                results.append(_with_trace(obj.result(now), inp))
        return results, conflicts, created

    def read(
        self, ot: ObjectType, id_property: str, ids: list[str], properties: list[str], archived: bool
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Objects by id (record ids, or values of a unique property); returns results and missing ids."""
        found: list[dict[str, Any]] = []
        missing: list[str] = []
        with self.store_lock:
            store = self.stores[ot.name]
            for oid in dict.fromkeys(ids):
                obj = store.archived.get(oid) if archived else store.lookup(ot, id_property, oid)
                if obj is None:
                    missing.append(oid)
                else:
                    found.append(obj.result(obj.updated_at, properties=properties, archived=archived))
        return found, missing

    def archive(self, ot: ObjectType, ids: list[str]) -> list[str]:
        """Move objects to the recycle bin (their unique values and links go); returns unknown ids."""
        missing: list[str] = []
        with self.store_lock:
            store = self.stores[ot.name]
            for oid in dict.fromkeys(ids):
                obj = store.objects.pop(oid, None)
                if obj is None:
                    missing.append(oid)
                    continue
                store.archived[oid] = obj
                for p in ot.id_props:
                    value = obj.properties.get(p)
                    ix = store.index.get(p, {})
                    if value is not None and ix.get(value) == oid:
                        del ix[value]
                self.links.drop_object(ot.name, oid)
        return missing

    def exists(self, ot: ObjectType, oid: str) -> bool:
        """Whether a live object has this record id."""
        with self.store_lock:
            return oid in self.stores[ot.name].objects

    def association_type(self, from_type: str, to_type: str, category: Any, type_id: Any) -> AssociationType | None:
        """A type of the pair, or None."""
        with self.catalog_lock:
            return self.association_types.find(from_type, to_type, category, type_id)


def _by_record_id(inputs: list[dict[str, Any]], targets: list[StoredObject | None]) -> list[dict[str, Any]]:
    """Update inputs addressed by their objects' record ids, as conflict checks expect."""
    return [
        {"id": obj.id if obj else ("missing", n), "properties": inp["properties"]}
        for n, (inp, obj) in enumerate(zip(inputs, targets, strict=True))
    ]


def _with_trace(result: dict[str, Any], inp: dict[str, Any]) -> dict[str, Any]:
    trace = inp.get("objectWriteTraceId")
    if trace is not None:
        result["objectWriteTraceId"] = trace
    return result


def apply_properties(
    ot: ObjectType,
    store: Store,
    obj: StoredObject,
    in_props: dict[str, str],
    now: str,
    *,
    new: bool,
    pinned: tuple[str, str] | None = None,
) -> None:
    """Write validated values to an object and keep the unique indexes in step (store_lock held).

    ``pinned`` is the ``(idProperty, key)`` the input addressed the object by: its value is
    kept as the key (emails lowercased) and its index is the caller's business.
    """
    props = obj.properties
    search_before = dict(props) if store.history is not None and not new else None
    # Other unique values this input sets: their indexes must follow (rare).
    before = None
    if not ot.id_props.isdisjoint(in_props):
        before = {p: props.get(p) for p in ot.id_props if p in in_props}
        if pinned is not None:
            before.pop(pinned[0], None)
    is_contacts = ot.name == "contacts"
    multi = ot.multi_props
    if "" in in_props.values() or (multi and not multi.isdisjoint(in_props)) or (is_contacts and "email" in in_props):
        _assign_each(props, in_props, multi, is_contacts)
    else:
        props.update(in_props)  # fast path: plain assignments
    if pinned is not None:
        props[pinned[0]] = pinned[1]
    if is_contacts and (new or "email" in in_props):
        email = props.get("email")
        if email and "@" in email:
            props["hs_email_domain"] = email.rsplit("@", 1)[1]
        else:
            props.pop("hs_email_domain", None)
    props[ot.modified] = now
    obj.updated_at = now
    if before:
        _reindex(store, obj, before)
    if store.history is not None:
        note_write(store, obj, new=new, before=search_before)


def _assign_each(props: dict[str, str], in_props: dict[str, str], multi: frozenset[str], is_contacts: bool) -> None:
    """Assign values one by one: clears, multi-select appends, lowercased emails."""
    for name, value in in_props.items():
        if value == "":
            props.pop(name, None)
        elif name in multi and value[0] == ";":
            merged = dict.fromkeys(x for x in props.get(name, "").split(";") if x)
            merged.update(dict.fromkeys(x for x in value[1:].split(";") if x))
            if merged:
                props[name] = ";".join(merged)
        elif is_contacts and name == "email":
            props[name] = value.lower()
        else:
            props[name] = value


def _reindex(store: Store, obj: StoredObject, before: dict[str, str | None]) -> None:
    for p, old in before.items():
        cur = obj.properties.get(p)
        if old != cur:
            pix = store.index.setdefault(p, {})
            if old is not None and pix.get(old) == obj.id:
                del pix[old]
            if cur is not None:
                pix[cur] = obj.id


def unique_conflicts(
    ot: ObjectType, indexes: dict[str, dict[str, str]], inputs: list[dict[str, Any]]
) -> list[Conflict]:
    """Find inputs that would give a unique property a value another object holds.

    HubSpot refuses them (e.g. upserting by ``external_id`` with an email that belongs to
    another contact: "Contact already exists. Existing ID: ..."). Two inputs of one
    request claiming the same value for different objects conflict as well. Inputs
    without ``idProperty`` address a record id (``id``) or, without ``id``, a new object.
    """
    out: list[Conflict] = []
    claimed: dict[tuple[str, str], object] = {}
    for n, inp in enumerate(inputs):
        in_props = inp["properties"]
        if ot.id_props.isdisjoint(in_props):
            continue  # the common case: the input sets no unique property
        idp = inp.get("idProperty")
        others = in_props.keys() & ot.id_props
        others.discard(idp)
        if not others:
            continue
        target = _conflict_target(ot, indexes, inp, n)
        found = _first_conflict(ot, indexes, in_props, sorted(others), target, claimed)
        if found is not None:
            out.append((n, *found))
    return out


def _conflict_target(ot: ObjectType, indexes: dict[str, dict[str, str]], inp: dict[str, Any], n: int) -> object:
    """What an input writes to: an existing record id, or a token for the object it creates."""
    idp = inp.get("idProperty")
    if idp is None:
        return inp.get("id", ("new", n))
    key = ot.key(idp, inp["id"])
    return indexes.get(idp, {}).get(key) or (idp, key)


def _first_conflict(
    ot: ObjectType,
    indexes: dict[str, dict[str, str]],
    in_props: dict[str, str],
    props: list[str],
    target: object,
    claimed: dict[tuple[str, str], object],
) -> tuple[str, str] | None:
    for prop in props:
        value = in_props[prop]
        if value == "":
            continue
        value = ot.key(prop, value)
        owner = indexes.get(prop, {}).get(value)
        first = claimed.setdefault((prop, value), target)
        if owner is not None and owner != target:
            return prop, f"{ot.label} already exists. Existing ID: {owner}"
        if first != target:
            return prop, f"{ot.label} already exists: another input sets {prop} to {value}"
    return None
