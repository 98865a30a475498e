"""Associations between objects: the type ids of each pair of object types, and the links."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .catalog import HUBSPOT_DEFINED_ASSOCIATIONS

HUBSPOT_DEFINED = "HUBSPOT_DEFINED"
USER_DEFINED = "USER_DEFINED"
_SYNTHETIC_FIRST_ID = 100_000  # default types of pairs HubSpot's table leaves out
_USER_FIRST_ID = 100


@dataclass(frozen=True)
class AssociationType:
    """One association type of a pair of object types (a direction)."""

    category: str
    type_id: int
    label: str | None

    def to_dict(self) -> dict[str, Any]:
        """The type with its label (None when unlabelled), as :meth:`HubSpotSimulator.associations` lists it."""
        return {"category": self.category, "typeId": self.type_id, "label": self.label}

    def to_wire(self) -> dict[str, Any]:
        """The type as HubSpot's answers give it: an unlabelled type has no ``label`` (never null)."""
        out: dict[str, Any] = {"category": self.category, "typeId": self.type_id}
        if self.label is not None:
            out["label"] = self.label
        return out


class AssociationTypes:
    """The association types of every pair of object types (callers hold the catalog lock).

    Pairs HubSpot's table does not define get a default unlabelled type on first use, so
    any two object types (custom ones too) can be associated.
    """

    def __init__(self) -> None:
        self.pairs: dict[tuple[str, str], list[AssociationType]] = {}
        self.inverse: dict[tuple[str, int], int] = {}
        self._next = {HUBSPOT_DEFINED: _SYNTHETIC_FIRST_ID, USER_DEFINED: _USER_FIRST_ID}
        for from_type, to_type, type_id, inverse_id, label in HUBSPOT_DEFINED_ASSOCIATIONS:
            self._add(from_type, to_type, HUBSPOT_DEFINED, type_id, inverse_id, label, label)

    def _add(
        self, from_type: str, to_type: str, category: str, type_id: int, inverse_id: int,
        label: str | None, inverse_label: str | None,
    ) -> None:  # fmt: skip
        self.pairs.setdefault((from_type, to_type), []).append(AssociationType(category, type_id, label))
        self.pairs.setdefault((to_type, from_type), []).append(AssociationType(category, inverse_id, inverse_label))
        self.inverse[(category, type_id)] = inverse_id
        self.inverse[(category, inverse_id)] = type_id

    def _allocate(self, category: str) -> int:
        type_id = self._next[category]
        self._next[category] += 2
        return type_id

    def of_pair(self, from_type: str, to_type: str) -> list[AssociationType]:
        """The types from one object type to another (a default one is made when there is none)."""
        types = self.pairs.get((from_type, to_type))
        if not types:
            type_id = self._allocate(HUBSPOT_DEFINED)
            self._add(from_type, to_type, HUBSPOT_DEFINED, type_id, type_id + 1, None, None)
            types = self.pairs[(from_type, to_type)]
        return types

    def default(self, from_type: str, to_type: str) -> AssociationType:
        """The pair's unlabelled HubSpot-defined type, used by ``associate/default``."""
        types = self.of_pair(from_type, to_type)
        return next((t for t in types if t.category == HUBSPOT_DEFINED and t.label is None), types[0])

    def find(self, from_type: str, to_type: str, category: Any, type_id: Any) -> AssociationType | None:
        """The pair's type with this category and id, or None."""
        for t in self.of_pair(from_type, to_type):
            if t.category == category and t.type_id == type_id:
                return t
        return None

    def add_label(self, from_type: str, to_type: str, label: str, inverse_label: str | None) -> tuple[int, int]:
        """Define a user label (and its inverse); returns both type ids."""
        if any(t.label == label and t.category == USER_DEFINED for t in self.of_pair(from_type, to_type)):
            raise ValueError(f"label {label!r} already exists from {from_type} to {to_type}")
        type_id = self._allocate(USER_DEFINED)
        self._add(from_type, to_type, USER_DEFINED, type_id, type_id + 1, label, inverse_label or label)
        return type_id, type_id + 1

    def type_of(self, from_type: str, to_type: str, category: str, type_id: int) -> AssociationType:
        """A type known to exist (as stored on a link)."""
        found = self.find(from_type, to_type, category, type_id)
        return found if found is not None else AssociationType(category, type_id, None)

    def target_type(self, from_type: str, category: Any, type_id: Any) -> str | None:
        """The object type a known type id of ``from_type`` leads to (how ``batch/create`` resolves it)."""
        for (f, to_type), types in self.pairs.items():
            if f == from_type and any(t.category == category and t.type_id == type_id for t in types):
                return to_type
        return None


def type_id_of(value: Any) -> int | None:
    """An association type id given as a number or a numeric string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


Links = dict[str, dict[str, set[tuple[str, int]]]]  # from id -> to id -> {(category, typeId)}


class AssociationLinks:
    """Links between objects, stored in both directions (callers hold the store lock)."""

    def __init__(self) -> None:
        self.links: dict[tuple[str, str], Links] = {}

    def add(self, types: AssociationTypes, ends: tuple[str, str, str, str], found: list[AssociationType]) -> None:
        """Link ``(from type, from id, to type, to id)`` with ``found`` types, and the inverse way."""
        from_type, from_id, to_type, to_id = ends
        forward = self.links.setdefault((from_type, to_type), {}).setdefault(from_id, {}).setdefault(to_id, set())
        back = self.links.setdefault((to_type, from_type), {}).setdefault(to_id, {}).setdefault(from_id, set())
        for t in found:
            forward.add((t.category, t.type_id))
            back.add((t.category, types.inverse.get((t.category, t.type_id), t.type_id)))

    def remove(self, ends: tuple[str, str, str, str]) -> None:
        """Remove every link between two objects (both directions); nothing happens when there is none."""
        from_type, from_id, to_type, to_id = ends
        self.links.get((from_type, to_type), {}).get(from_id, {}).pop(to_id, None)
        self.links.get((to_type, from_type), {}).get(to_id, {}).pop(from_id, None)

    def of(self, from_type: str, from_id: str, to_type: str) -> dict[str, set[tuple[str, int]]]:
        """The links of one object to objects of one type."""
        return self.links.get((from_type, to_type), {}).get(from_id, {})

    def drop_object(self, object_type: str, object_id: str) -> None:
        """Remove every link of an object (it was archived)."""
        for (from_type, to_type), by_from in list(self.links.items()):
            if from_type == object_type:
                for to_id in list(by_from.get(object_id, {})):
                    self.remove((from_type, object_id, to_type, to_id))

    def of_type(self, from_type: str, to_type: str | None = None) -> list[tuple[str, str, str, set[tuple[str, int]]]]:
        """Every link from objects of a type: ``(from id, to type, to id, types)``."""
        out = []
        for (f, t), by_from in self.links.items():
            if f != from_type or (to_type is not None and t != to_type):
                continue
            for from_id, by_to in by_from.items():
                out += [(from_id, t, to_id, set(kinds)) for to_id, kinds in by_to.items() if kinds]
        return out
