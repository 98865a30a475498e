"""Default object types and property catalogues of the HubSpot simulator.

The catalogues mimic a small but realistic HubSpot portal: every object type has the
read-only bookkeeping properties HubSpot maintains itself (``hs_object_id``, creation and
modification dates), at least one calculated property, one custom unique property usable
as an upsert ``idProperty``, and a mix of every property type the target has to convert
values for (string, number, bool, date, datetime, single- and multi-select enumerations).

Everything returned here is a fresh copy, so a simulator can mutate its catalogue (the
Properties API creates properties at runtime) without affecting other instances.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Valid ``fieldType`` values for each property ``type`` (checked on property creation;
#: calculated fields cannot be created through this API).
FIELD_TYPES_BY_TYPE: dict[str, frozenset[str]] = {
    "bool": frozenset({"booleancheckbox"}),
    "enumeration": frozenset({"select", "radio", "checkbox", "booleancheckbox"}),
    "number": frozenset({"number"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
    "string": frozenset({"text", "textarea", "file", "html", "phonenumber"}),
    "phone_number": frozenset({"phonenumber"}),
}

#: The ``fieldType`` used when a catalogue entry does not name one.
DEFAULT_FIELD_TYPE: dict[str, str] = {
    "bool": "booleancheckbox",
    "enumeration": "select",
    "number": "number",
    "date": "date",
    "datetime": "date",
    "string": "text",
    "phone_number": "phonenumber",
}

_BOOL_OPTIONS: list[tuple[str, str]] = [("Yes", "true"), ("No", "false")]


def make_property(
    name: str,
    type: str = "string",
    field_type: str | None = None,
    *,
    label: str | None = None,
    group: str = "",
    description: str = "",
    options: Iterable[str | tuple[str, str]] | None = None,
    unique: bool = False,
    calculated: bool = False,
    read_only: bool = False,
    external_options: bool = False,
    hidden: bool = False,
    display_order: int = -1,
) -> dict[str, Any]:
    """Build a property definition shaped like HubSpot's Properties API output.

    Args:
        name: Internal property name.
        type: HubSpot data type (``bool``, ``date``, ``datetime``, ``enumeration``,
            ``number``, ``phone_number`` or ``string``).
        field_type: UI field type; defaults to the usual one for ``type``.
        label: Display label; defaults to the name in title case.
        group: Property group name.
        description: Free text.
        options: Enumeration options, as values or ``(label, value)`` pairs. Bool
            properties get HubSpot's Yes/No options when omitted.
        unique: ``hasUniqueValue`` (makes the property usable as an upsert idProperty).
        calculated: Marks a calculated property (never writable).
        read_only: Sets ``modificationMetadata.readOnlyValue`` (never writable).
        external_options: Options come from elsewhere (e.g. owners); any value is accepted.
        hidden: Hidden in HubSpot's UI.
        display_order: Position in forms and the UI.

    Returns:
        A JSON-serialisable property dict.
    """
    if options is None and type == "bool":
        options = _BOOL_OPTIONS
    opts = []
    for i, opt in enumerate(options or ()):
        opt_label, value = (
            opt if isinstance(opt, tuple) else (opt.replace("_", " ").title(), opt)
        )
        opts.append(
            {"label": opt_label, "value": value, "displayOrder": i, "hidden": False}
        )
    return {
        "name": name,
        "label": label if label is not None else name.replace("_", " ").title(),
        "type": type,
        "fieldType": field_type or DEFAULT_FIELD_TYPE.get(type, "text"),
        "groupName": group,
        "description": description,
        "options": opts,
        "displayOrder": display_order,
        "hasUniqueValue": unique,
        "calculated": calculated,
        "externalOptions": external_options,
        "archived": False,
        "hidden": hidden,
        "formField": not (read_only or calculated or hidden),
        "modificationMetadata": {
            "archivable": not (read_only or calculated or name.startswith("hs_")),
            "readOnlyDefinition": read_only or calculated or name.startswith("hs_"),
            "readOnlyValue": read_only or calculated,
        },
    }


def make_group(
    name: str, label: str | None = None, display_order: int = -1
) -> dict[str, Any]:
    """Build a property group definition shaped like HubSpot's.

    Args:
        name: Internal group name.
        label: Display label; defaults to the name in title case.
        display_order: Position in the UI.

    Returns:
        A JSON-serialisable group dict.
    """
    return {
        "name": name,
        "label": label if label is not None else name.replace("_", " ").title(),
        "displayOrder": display_order,
        "archived": False,
    }


@dataclass
class ObjectTypeSpec:
    """Definition of one CRM object type.

    Attributes:
        name: Canonical (plural) name, e.g. ``contacts``.
        type_id: HubSpot object type id, e.g. ``0-1`` or ``2-1234567``.
        aliases: Further names accepted in URLs (singular forms, ``p_<name>``...).
        properties: Property definitions (see :func:`make_property`).
        groups: Property group definitions (see :func:`make_group`).
        created_property: Name of the read-only creation date property.
        modified_property: Name of the read-only last-modified date property.
        custom: True for custom objects (they share the ``custom`` OAuth scopes).
    """

    name: str
    type_id: str
    aliases: tuple[str, ...] = ()
    properties: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    created_property: str = "createdate"
    modified_property: str = "hs_lastmodifieddate"
    custom: bool = False

    @property
    def scope_name(self) -> str:
        """The object part of this type's OAuth scopes (``custom`` for custom objects)."""
        return "custom" if self.custom else self.name

    @property
    def all_names(self) -> tuple[str, ...]:
        """Every name this type is reachable by: canonical name, type id and aliases."""
        return (self.name, self.type_id, *self.aliases)

    def copy(self) -> ObjectTypeSpec:
        """Return a deep copy (catalogues are mutated by property creation)."""
        return copy.deepcopy(self)


def _standard_properties(
    group: str, created: str, modified: str
) -> list[dict[str, Any]]:
    """The bookkeeping properties HubSpot keeps on every object, all read-only."""
    return [
        make_property(
            "hs_object_id",
            "number",
            label="Record ID",
            group=group,
            read_only=True,
            description="The unique ID for this record. This value is set automatically by HubSpot.",
        ),
        make_property(
            created,
            "datetime",
            label="Create Date",
            group=group,
            read_only=True,
            description="The date and time at which this object was created.",
        ),
        make_property(
            modified,
            "datetime",
            label="Last Modified Date",
            group=group,
            read_only=True,
            description="Most recent timestamp of any property update for this object.",
        ),
    ]


def _complete_property(raw: dict[str, Any], group: str) -> dict[str, Any]:
    """A full HubSpot-shaped property from a full or partial definition."""
    if "fieldType" in raw and "modificationMetadata" in raw:
        full = copy.deepcopy(raw)
        full.setdefault("groupName", group)
        return full
    options = [(o["label"], o["value"]) if isinstance(o, dict) else o for o in raw.get("options", ())]
    return make_property(
        raw["name"],
        raw.get("type", "string"),
        raw.get("fieldType"),
        label=raw.get("label"),
        group=raw.get("groupName", group),
        description=raw.get("description", ""),
        options=options or None,
        unique=bool(raw.get("hasUniqueValue", False)),
        calculated=bool(raw.get("calculated", False)),
        read_only=bool(raw.get("readOnlyValue", False)),
        external_options=bool(raw.get("externalOptions", False)),
    )


def build_object_type(
    name: str,
    type_id: str,
    properties: Sequence[dict[str, Any]],
    *,
    aliases: Iterable[str] = (),
    group: str | None = None,
    created_property: str = "hs_createdate",
    modified_property: str = "hs_lastmodifieddate",
    custom: bool | None = None,
) -> ObjectTypeSpec:
    """Build an object type, completing partial property definitions.

    Each property may be a full HubSpot-shaped dict or a partial one with at least
    ``name`` (``type`` defaults to ``string``). The standard read-only properties and the
    default group are added when missing.

    Args:
        name: Canonical name.
        type_id: Object type id (``2-<n>`` marks a custom object).
        properties: Property definitions, full or partial.
        aliases: Extra URL names. Custom objects also get ``p_<name>``.
        group: Default group name (``<singular>information`` when omitted).
        created_property: Name of the creation date property.
        modified_property: Name of the last-modified property.
        custom: Whether it is a custom object; inferred from ``type_id`` when None.

    Returns:
        The completed object type.
    """
    is_custom = type_id.startswith("2-") if custom is None else custom
    group = group or f"{name.rstrip('s')}information"
    alias_list = list(aliases)
    if is_custom and f"p_{name}" not in alias_list:
        alias_list.append(f"p_{name}")
    props: dict[str, dict[str, Any]] = {
        p["name"]: p for p in _standard_properties(group, created_property, modified_property)
    }
    for raw in properties:
        full = _complete_property(raw, group)
        props[full["name"]] = full
    groups = [
        make_group(
            group, f"{name.rstrip('s').replace('_', ' ').title()} information", 0
        )
    ]
    for p in props.values():
        if not any(g["name"] == p["groupName"] for g in groups):
            groups.append(make_group(p["groupName"]))
    return ObjectTypeSpec(
        name=name,
        type_id=type_id,
        aliases=tuple(alias_list),
        properties=list(props.values()),
        groups=groups,
        created_property=created_property,
        modified_property=modified_property,
        custom=is_custom,
    )


_LIFECYCLE = [
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
]


def _contacts() -> ObjectTypeSpec:
    g = "contactinformation"
    p = make_property
    props = [
        p("email", label="Email", group=g),
        p("firstname", label="First Name", group=g),
        p("lastname", label="Last Name", group=g),
        p("phone", "phone_number", "phonenumber", label="Phone Number", group=g),
        p("company", label="Company Name", group=g),
        p("website", label="Website URL", group=g),
        p(
            "lifecyclestage",
            "enumeration",
            "radio",
            label="Lifecycle Stage",
            group=g,
            options=[(s.title(), s) for s in _LIFECYCLE],
        ),
        p(
            "interests",
            "enumeration",
            "checkbox",
            group=g,
            options=["sports", "music", "travel", "cooking", "tech"],
        ),
        p(
            "hubspot_owner_id",
            "enumeration",
            "select",
            label="Contact owner",
            group=g,
            external_options=True,
        ),
        p("date_of_birth", "date", group=g),
        p("last_order_at", "datetime", group=g),
        p("num_orders", "number", group=g),
        p("lifetime_value", "number", group=g),
        p("is_vip", "bool", label="Is VIP", group=g),
        p("external_id", label="External ID", group=g, unique=True),
        p("notes", "string", "textarea", group=g),
        p("hs_email_domain", label="Email Domain", group=g, calculated=True),
    ]
    return build_object_type(
        "contacts",
        "0-1",
        props,
        aliases=("contact",),
        group=g,
        created_property="createdate",
        modified_property="lastmodifieddate",
    )


def _companies() -> ObjectTypeSpec:
    g = "companyinformation"
    p = make_property
    props = [
        p("name", label="Company name", group=g),
        p("domain", label="Company Domain Name", group=g),
        p(
            "industry",
            "enumeration",
            "select",
            group=g,
            options=[
                "ACCOUNTING",
                "COMPUTER_SOFTWARE",
                "FINANCIAL_SERVICES",
                "RETAIL",
                "OTHER",
            ],
        ),
        p("numberofemployees", "number", label="Number of Employees", group=g),
        p("annualrevenue", "number", label="Annual Revenue", group=g),
        p("founded_on", "date", group=g),
        p("is_public", "bool", group=g),
        p("company_external_id", label="Company External ID", group=g, unique=True),
        p("description", "string", "textarea", group=g),
        p(
            "num_associated_contacts",
            "number",
            label="Number of Associated Contacts",
            group=g,
            calculated=True,
        ),
    ]
    return build_object_type(
        "companies",
        "0-2",
        props,
        aliases=("company",),
        group=g,
        created_property="createdate",
    )


def _deals() -> ObjectTypeSpec:
    g = "dealinformation"
    p = make_property
    props = [
        p("dealname", label="Deal Name", group=g),
        p("amount", "number", group=g),
        p("closedate", "datetime", label="Close Date", group=g),
        p(
            "dealstage",
            "enumeration",
            "radio",
            label="Deal Stage",
            group=g,
            options=[
                "appointmentscheduled",
                "qualifiedtobuy",
                "closedwon",
                "closedlost",
            ],
        ),
        p(
            "pipeline",
            "enumeration",
            "select",
            group=g,
            options=[("Sales Pipeline", "default")],
        ),
        p("deal_external_id", label="Deal External ID", group=g, unique=True),
        p("days_to_close", "number", label="Days to close", group=g, calculated=True),
    ]
    return build_object_type(
        "deals", "0-3", props, aliases=("deal",), group=g, created_property="createdate"
    )


def _tickets() -> ObjectTypeSpec:
    g = "ticketinformation"
    p = make_property
    props = [
        p("subject", label="Ticket name", group=g),
        p("content", "string", "textarea", label="Ticket description", group=g),
        p(
            "hs_pipeline",
            "enumeration",
            "select",
            label="Pipeline",
            group=g,
            options=[("Support Pipeline", "0")],
        ),
        p(
            "hs_pipeline_stage",
            "enumeration",
            "select",
            label="Ticket status",
            group=g,
            options=[
                ("New", "1"),
                ("Waiting on contact", "2"),
                ("Waiting on us", "3"),
                ("Closed", "4"),
            ],
        ),
        p(
            "hs_ticket_priority",
            "enumeration",
            "select",
            label="Priority",
            group=g,
            options=[("Low", "LOW"), ("Medium", "MEDIUM"), ("High", "HIGH")],
        ),
        p("ticket_external_id", label="Ticket External ID", group=g, unique=True),
        p("time_to_close", "number", label="Time to close", group=g, calculated=True),
    ]
    return build_object_type(
        "tickets",
        "0-5",
        props,
        aliases=("ticket",),
        group=g,
        created_property="createdate",
    )


def _products() -> ObjectTypeSpec:
    g = "productinformation"
    p = make_property
    props = [
        p("name", group=g),
        p("price", "number", label="Unit price", group=g),
        p("hs_sku", label="SKU", group=g),
        p("description", "string", "textarea", group=g),
        p("product_external_id", label="Product External ID", group=g, unique=True),
        p("hs_price_display", label="Price display", group=g, calculated=True),
    ]
    return build_object_type(
        "products",
        "0-7",
        props,
        aliases=("product",),
        group=g,
        created_property="createdate",
    )


def _line_items() -> ObjectTypeSpec:
    g = "lineiteminformation"
    p = make_property
    props = [
        p("name", group=g),
        p("quantity", "number", group=g),
        p("price", "number", label="Unit price", group=g),
        p("line_item_external_id", label="Line Item External ID", group=g, unique=True),
        p("amount", "number", label="Net price", group=g, calculated=True),
    ]
    return build_object_type(
        "line_items",
        "0-8",
        props,
        aliases=("line_item", "lineitems", "lineitem"),
        group=g,
        created_property="createdate",
    )


def _subscriptions() -> ObjectTypeSpec:
    g = "subscriptioninformation"
    p = make_property
    props = [
        p("hs_name", label="Name", group=g),
        p(
            "hs_status",
            "enumeration",
            "select",
            label="Status",
            group=g,
            options=["active", "canceled", "expired"],
        ),
        p(
            "hs_recurring_billing_start_date",
            "date",
            label="Billing start date",
            group=g,
        ),
        p(
            "subscription_external_id",
            label="Subscription External ID",
            group=g,
            unique=True,
        ),
        p("hs_total_amount", "number", label="Total amount", group=g, calculated=True),
    ]
    return build_object_type(
        "subscriptions", "0-69", props, aliases=("subscription",), group=g
    )


def _widgets() -> ObjectTypeSpec:
    g = "widgetinformation"
    p = make_property
    props = [
        p("widget_id", label="Widget ID", group=g, unique=True),
        p("name", group=g),
        p("size", "number", group=g),
        p("color", "enumeration", "select", group=g, options=["red", "green", "blue"]),
        p("launched_on", "date", group=g),
        p(
            "tags",
            "enumeration",
            "checkbox",
            group=g,
            options=["alpha", "beta", "gamma"],
        ),
        p("active", "bool", group=g),
        p("hs_widget_score", "number", label="Widget score", group=g, calculated=True),
    ]
    return build_object_type(
        "widgets", "2-1234567", props, aliases=("widget",), group=g, custom=True
    )


def _activity(name: str, type_id: str, singular: str, props: list[dict[str, Any]]) -> ObjectTypeSpec:
    """An engagement type (notes, calls, ...): no unique property, so objects can only be created."""
    g = f"{singular}information"
    p = make_property
    common = [
        p("hs_timestamp", "datetime", label="Activity date", group=g),
        p("hubspot_owner_id", "enumeration", "select", label="Activity assigned to", group=g, external_options=True),
    ]
    return build_object_type(
        name, type_id, [*common, *({**prop, "groupName": g} for prop in props)], aliases=(singular,), group=g,
        created_property="hs_createdate",
    )


def _engagements() -> list[ObjectTypeSpec]:
    """HubSpot's activity objects with their main properties (HubSpot's engagements API pages)."""
    p = make_property
    return [
        _activity("notes", "0-46", "note", [p("hs_note_body", "string", "html", label="Note body")]),
        _activity("calls", "0-48", "call", [
            p("hs_call_title", label="Call title"), p("hs_call_body", "string", "html", label="Call notes"),
            p("hs_call_duration", "number", label="Call duration (ms)"),
            p("hs_call_direction", "enumeration", "select", label="Call direction", options=["INBOUND", "OUTBOUND"]),
            p("hs_call_status", "enumeration", "select", label="Call status",
              options=["BUSY", "CALLING_CRM_USER", "CANCELED", "COMPLETED", "CONNECTING", "FAILED", "IN_PROGRESS",
                       "NO_ANSWER", "QUEUED", "RINGING"]),
        ]),
        _activity("emails", "0-49", "email", [
            p("hs_email_subject", label="Email subject"), p("hs_email_text", "string", "textarea", label="Email body"),
            p("hs_email_direction", "enumeration", "select", label="Email direction",
              options=["EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"]),
            p("hs_email_status", "enumeration", "select", label="Email status",
              options=["BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT"]),
        ]),
        _activity("meetings", "0-47", "meeting", [
            p("hs_meeting_title", label="Meeting name"),
            p("hs_meeting_body", "string", "html", label="Meeting description"),
            p("hs_meeting_start_time", "datetime", label="Start time"),
            p("hs_meeting_end_time", "datetime", label="End time"),
            p("hs_meeting_location", label="Location"),
        ]),
        _activity("tasks", "0-27", "task", [
            p("hs_task_subject", label="Task title"), p("hs_task_body", "string", "html", label="Notes"),
            p("hs_task_status", "enumeration", "select", label="Task status",
              options=["NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"]),
            p("hs_task_priority", "enumeration", "select", label="Priority", options=["NONE", "LOW", "MEDIUM", "HIGH"]),
            p("hs_task_type", "enumeration", "select", label="Task type", options=["CALL", "EMAIL", "TODO"]),
        ]),
    ]


def _quotes() -> ObjectTypeSpec:
    g = "quoteinformation"
    p = make_property
    props = [
        p("hs_title", label="Quote name", group=g),
        p("hs_expiration_date", "date", label="Expiration date", group=g),
        p("hs_status", "enumeration", "select", label="Quote approval status", group=g,
          options=["DRAFT", "APPROVAL_NOT_NEEDED", "PENDING_APPROVAL", "APPROVED", "REJECTED"]),
        p("hs_language", label="Language", group=g),
        p("hs_currency", label="Currency", group=g),
        p("hs_quote_amount", "number", label="Amount", group=g, calculated=True),
    ]
    return build_object_type("quotes", "0-14", props, aliases=("quote",), group=g, created_property="hs_createdate")


def default_object_types() -> list[ObjectTypeSpec]:
    """Return fresh copies of the simulator's default object types.

    Returns:
        contacts, companies, deals, tickets, products, line_items, subscriptions, quotes, the
        activities notes, calls, emails, meetings and tasks (no unique property), and the custom
        object ``widgets`` (``p_widgets`` / ``2-1234567``).
    """
    return [
        _contacts(),
        _companies(),
        _deals(),
        _tickets(),
        _products(),
        _line_items(),
        _subscriptions(),
        _quotes(),
        *_engagements(),
        _widgets(),
    ]


#: HubSpot-defined association types, one line per pair of directions:
#: ``(from type, to type, typeId, inverse typeId, label)`` (HubSpot's Node client,
#: ``AssociationTypes``; a None label is the pair's default, unlabelled type).
HUBSPOT_DEFINED_ASSOCIATIONS: list[tuple[str, str, int, int, str | None]] = [
    ("contacts", "companies", 279, 280, None),
    ("contacts", "companies", 1, 2, "Primary"),
    ("deals", "contacts", 3, 4, None),
    ("deals", "companies", 341, 342, None),
    ("deals", "companies", 5, 6, "Primary"),
    ("contacts", "tickets", 15, 16, None),
    ("tickets", "companies", 339, 340, None),
    ("tickets", "companies", 26, 25, "Primary"),
    ("deals", "tickets", 27, 28, None),
    ("deals", "line_items", 19, 20, None),
    ("notes", "contacts", 202, 201, None),
    ("notes", "companies", 190, 189, None),
    ("notes", "deals", 214, 213, None),
    ("notes", "tickets", 228, 227, None),
    ("calls", "contacts", 194, 193, None),
    ("calls", "companies", 182, 181, None),
    ("calls", "deals", 206, 205, None),
    ("emails", "contacts", 198, 197, None),
    ("emails", "companies", 186, 185, None),
    ("emails", "deals", 210, 209, None),
    ("meetings", "contacts", 200, 199, None),
    ("meetings", "companies", 188, 187, None),
    ("meetings", "deals", 212, 211, None),
    ("tasks", "contacts", 204, 203, None),
    ("tasks", "companies", 192, 191, None),
    ("tasks", "deals", 216, 215, None),
    ("quotes", "deals", 64, 63, None),
    ("quotes", "line_items", 67, 68, None),
    ("quotes", "contacts", 69, 70, None),
    ("quotes", "companies", 71, 72, None),
]
