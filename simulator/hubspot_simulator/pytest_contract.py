"""A pytest plugin: every exchange with a simulator of the test process is checked against HubSpot's models.

Load it from a conftest (``pytest_plugins = ["hubspot_simulator.pytest_contract"]``). Each
request a :class:`~hubspot_simulator.HubSpotSimulator` of this process receives, and each answer
it gives, is checked after its test (fixtures torn down) against the models of HubSpot's official
client (see :mod:`.contract`). An exchange outside the contract fails the test at teardown, naming
the operation and the field; exchanges between tests are checked at the end of the session, which
then fails. Works under pytest-xdist: each worker checks its own tests and hands leftovers to the
controller.

A test that sends requests outside the contract on purpose (the simulator's own tests of its
refusals) says so with ``@pytest.mark.off_contract_requests``: its requests are not checked,
its answers are.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any

import pytest

from . import contract

MARK = "off_contract_requests"
_SHOWN = 20  # violations named per test; the rest are counted


class ContractCheck:
    """Collects exchanges per test and checks them when the test is done."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.test: str | None = None
        self.check_requests = True
        self.pending: list[tuple[str | None, bool, contract.Exchange]] = []
        self.checked = 0
        self.outside = 0
        self.leftovers: list[str] = []

    def observe(self, exchange: contract.Exchange) -> None:
        """Note one exchange under the test running now (called from the simulators' threads)."""
        with self.lock:
            self.pending.append((self.test, self.check_requests, exchange))

    def take(self) -> list[tuple[str | None, bool, contract.Exchange]]:
        """The exchanges noted so far, forgotten here."""
        with self.lock:
            taken, self.pending = self.pending, []
            return taken

    def verdicts(self, noted: list[tuple[str | None, bool, contract.Exchange]]) -> list[str]:
        """One line per problem: test, operation, method and path, field and what is wrong."""
        lines: list[str] = []
        for test, check_requests, exchange in noted:
            op, problems = contract.violations(exchange, check_requests)
            if op is None:
                continue
            self.checked += 1
            if problems:
                self.outside += 1
            where = f"{test or '(between tests)'}: {op.name} ({exchange.method} {exchange.path})"
            lines += [f"{where}: {p}" for p in problems]
        return lines


_check = ContractCheck()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and start watching every simulator of this process."""
    config.addinivalue_line(
        "markers", f"{MARK}: the test sends requests outside HubSpot's contract on purpose (answers are still checked)"
    )
    if _check.observe not in contract.observers:
        contract.observers.append(_check.observe)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop watching (a pytester run in the same process must not keep this session's observer)."""
    if _check.observe in contract.observers:
        contract.observers.remove(_check.observe)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    """Exchanges from here on belong to ``item``."""
    leftovers = _check.verdicts(_check.take())  # between the last test and this one
    _check.leftovers += leftovers
    with _check.lock:
        _check.test = item.nodeid
        _check.check_requests = item.get_closest_marker(MARK) is None
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, Any]:
    """After the fixtures (and so the simulators) are done, check the test's exchanges."""
    try:
        result = yield
    finally:
        noted = _check.take()
        with _check.lock:
            _check.test = None
    lines = _check.verdicts(noted)
    if lines:
        shown = "\n".join(lines[:_SHOWN])
        more = f"\n... and {len(lines) - _SHOWN} more" if len(lines) > _SHOWN else ""
        pytest.fail(f"exchanges outside HubSpot's published contract:\n{shown}{more}", pytrace=False)
    return result


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Check what came after the last test; fail the session on any leftover violation."""
    _check.leftovers += _check.verdicts(_check.take())
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports
        workeroutput["hubspot_contract"] = {
            "checked": _check.checked, "outside": _check.outside, "leftovers": _check.leftovers,
        }
        return
    if _check.leftovers and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the xdist controller: add up a worker's counts and leftovers."""
    out = getattr(node, "workeroutput", {}).get("hubspot_contract")
    if out:
        _check.checked += out["checked"]
        _check.outside += out["outside"]
        _check.leftovers += out["leftovers"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many exchanges were checked, and any outside the contract between tests."""
    if getattr(terminalreporter.config, "workeroutput", None) is not None:
        return
    terminalreporter.write_sep("-", "HubSpot contract")
    terminalreporter.write_line(
        f"{_check.checked} exchanges with the simulator checked against hubspot-api-client's models, "
        f"{_check.outside} outside the contract"
    )
    for line in _check.leftovers[:_SHOWN]:
        terminalreporter.write_line(f"outside the contract: {line}")
