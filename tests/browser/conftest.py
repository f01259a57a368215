"""Browser-test plumbing: each test's outcome on its item, so a fixture can save what the
page showed when the test failed (the only way to debug a React page after the fact)."""

from __future__ import annotations

from collections.abc import Generator

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator:
    """Keep the call phase's report on the item (`item.rep_call`) for fixtures to read."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report
