"""The incident timeline in a real browser: states and notes in one order, durations, and a backdated state arriving live."""

import re
from datetime import timedelta

import pytest

from tests.test_browser import browser, keep_screenshot, log_in, new_page, ou_sim, server, staff, wait_live  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ORDER = """() => [...document.querySelectorAll('#timeline > li:not(.empty)')].map(li =>
    li.hasAttribute('data-state-change') ? 'state:' + li.dataset.state : 'note:' + li.dataset.noteState)"""


def test_a_backdated_state_moves_into_place_on_the_open_page(browser, server, staff, ou_sim):  # noqa: F811
    declared = ou_sim.clock() - timedelta(minutes=50)
    incident = ou_sim.add_incident("Checkout payments failing", state="Created", severity="Critical", declaredAt=declared)
    ou_sim.add_note(incident["_id"], "We are investigating failed card payments.", postedAt=declared + timedelta(minutes=2))
    ou_sim.add_note(
        incident["_id"], "## Identified\n\nA bad deploy of `payments-service`.", postedAt=declared + timedelta(minutes=20)
    )
    page = new_page(browser)
    log_in(page, server)
    page.goto(f"{server.url}/incidents/{incident['_id']}/")
    wait_live(page)
    page.wait_for_selector("#timeline [data-state-change]", timeout=15000)
    assert page.evaluate(ORDER) == ["state:Created", "note:Created", "note:Created"]
    assert page.is_visible('[data-duration="acknowledge"]'), "not acknowledged for … counts up"
    counting = '#incident-header [data-duration="acknowledge"] time'
    first = page.inner_text(counting)
    assert re.fullmatch(r"(49|50|51) min( \d+ s)?", first), f"to the second, as fixed durations are said: {first}"
    page.wait_for_function(f"() => document.querySelector('{counting}').textContent !== {first!r}", timeout=5000)

    ou_sim.add_state(incident["_id"], "Acknowledged", starts_at=declared + timedelta(minutes=5))  # entered late
    page.wait_for_selector('#timeline [data-state="Acknowledged"]', timeout=15000)
    assert page.evaluate(ORDER) == ["state:Created", "note:Created", "state:Acknowledged", "note:Acknowledged"]
    assert page.get_attribute('[data-duration="acknowledge"]', "data-seconds") == "300"
    assert page.inner_text('[data-duration="acknowledge"]') == "5 min"
    ou_sim.set_incident_state(incident["_id"], "Resolved")
    ou_sim.add_note(incident["_id"], "All systems are operating normally again.")
    page.wait_for_selector('#timeline [data-note-state="Resolved"]', timeout=15000)
    assert page.is_visible('[data-duration="resolve"]')
    assert page.console_errors == []
    keep_screenshot(page, "incident-states")
