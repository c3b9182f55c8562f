"""Shared fixtures: the simulators run as real HTTP servers on loopback, and settings point at them."""

import pytest

from dashboard.live import push_queue
from dashboard.simulators import hth, oneuptime
from dashboard.upstreams.oneuptime.client import OneUptimeClient


@pytest.fixture
def hth_sim(settings):
    with hth.serve(port=0, seed=1) as sim:
        settings.HTH_API_URL = sim.url
        settings.HTH_COMPANY_KEY = sim.company_key
        settings.HTH_ACCOUNT_KEY = sim.account_key
        yield sim


@pytest.fixture
def oneuptime_sim(settings):
    with oneuptime.serve(port=0, seed=1, notification_delay=60) as sim:
        settings.ONEUPTIME_API_URL = sim.url
        settings.ONEUPTIME_API_KEY = sim.api_key
        yield sim


@pytest.fixture
def oneuptime_client(oneuptime_sim):
    return OneUptimeClient.from_settings()


@pytest.fixture(autouse=True)
def quick_retries(settings):
    """Back off in milliseconds so tests of 429/5xx retries stay fast; Retry-After is still honoured."""
    settings.UPSTREAM_BACKOFF_FACTOR = 0.01
    settings.UPSTREAM_TIMEOUT = (2, 5)


@pytest.fixture(autouse=True)
def pushes_stay_in_their_test():
    """Syncs push on the push thread (dashboard/live/push_queue.py): what one test pushed is sent, or
    dropped with its event loop, before the next test starts, and no gap it left reaches the next one."""
    yield
    push_queue.drain(timeout=10)
    push_queue.forget_losses()
