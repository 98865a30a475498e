"""Local HubSpot CRM API simulator for tests, demos and benchmarks.

Standard library only and independent of the target: it models HubSpot's behaviour
(validation, error bodies, rate limits, OAuth, faults) so the target can be exercised
without a HubSpot account. Start it in-process with :class:`HubSpotSimulator` or as a
separate process with ``python -m hubspot_simulator`` / ``hubspot-simulator``.
"""

from .options import FAULTS, OPTION_DEFAULTS
from .requestlog import RequestLogEntry
from .server import HubSpotSimulator

__all__ = ["FAULTS", "OPTION_DEFAULTS", "HubSpotSimulator", "RequestLogEntry"]
