"""Request builders shared by the simulator's tests."""

from __future__ import annotations

from typing import Any

import requests
from hubspot_simulator import HubSpotSimulator

TOKEN = "sim-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: The fields HubSpot's model of a batch/read body requires besides inputs (no properties, no history).
READ: dict[str, Any] = {"properties": [], "propertiesWithHistory": []}


def upsert(
    http: requests.Session,
    sim: HubSpotSimulator,
    inputs: list[dict[str, Any]],
    object_type: str = "contacts",
    token: str = TOKEN,
    path: str | None = None,
) -> requests.Response:
    url = sim.base_url + (path or f"/crm/v3/objects/{object_type}/batch/upsert")
    return http.post(url, json={"inputs": inputs}, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def post(
    http: requests.Session, sim: HubSpotSimulator, path: str, body: Any, token: str = TOKEN
) -> requests.Response:
    """POST a JSON body to an API path of the simulator."""
    return http.post(sim.base_url + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def contact(id_: str, trace: str | None = None, **props: str) -> dict[str, Any]:
    item: dict[str, Any] = {"id": id_, "idProperty": "email", "properties": props}
    if trace is not None:
        item["objectWriteTraceId"] = trace
    return item
