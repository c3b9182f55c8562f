"""What people see, in a real browser: Debian's chromium driven by Playwright, against a real server.

The server is `manage.py serve` (daphne with the poller inside) in its own process, pointed at
simulators this test controls, so a test can move a build, edit a note, or kill daphne.
"""

import os
import re
import shutil
import signal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from dashboard.live import screens
from dashboard.models import ScreenPanel
from dashboard.simulators import oneuptime
from tests.processes import BASE_DIR, base_env, free_port, start_manage, wait_for_port

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = BASE_DIR / "static" / "screenshots"
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 1"> [x](javascript:window.__xss=1)'


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the tests' own queries are still sync.
    # (Servers started by the tests do not inherit this: tests/processes.py strips it.)
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--host-resolver-rules=MAP foreign.test 127.0.0.1, MAP pulse.example.com 127.0.0.1",  # tests/nginx.py's HOST
            ],
        )
        yield browser
        browser.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def ou_sim():
    with oneuptime.serve(port=0, seed=3, notification_delay=3600) as sim:
        yield sim


class Server:
    """`manage.py serve` in a process of its own, which a test may kill and start again."""

    def __init__(self, env, log, *options):
        self.env = env
        self.log = log
        self.options = options
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        self.process = start_manage("serve", "--port", str(self.port), *self.options, env=self.env, log=self.log)
        wait_for_port(self.port, self.process)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except Exception:
                self.process.kill()


def server_env(hth_sim, ou_sim):
    return base_env(
        HTH_API_URL=hth_sim.url,
        HTH_COMPANY_KEY=hth_sim.company_key,
        HTH_ACCOUNT_KEY=hth_sim.account_key,
        ONEUPTIME_API_URL=ou_sim.url,
        ONEUPTIME_API_KEY=ou_sim.api_key,
        POLL_INTERVAL_SECONDS="1",
        LIVE_REFRESH_SECONDS="0.5",
        UPSTREAM_RETRIES="1",
        UPSTREAM_BACKOFF_SECONDS="0.05",
    )


@pytest.fixture
def server(hth_sim, ou_sim, tmp_path):
    hth_sim.generate(80)
    ou_sim.generate(incidents=6, notes=30)
    env = server_env(hth_sim, ou_sim)
    with open(tmp_path / "server.log", "w") as log:
        server = Server(env, log)
        server.start()
        yield server
        server.stop()
    print((tmp_path / "server.log").read_text()[-5000:])  # shown when a test fails


@pytest.fixture
def staff():
    return get_user_model().objects.create_superuser("admin", "admin@example.com", "a long pass phrase")


def log_in(page, server):
    page.goto(server.url + "/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "a long pass phrase")
    page.click("button[type=submit]")
    page.wait_for_selector("#feed")


def new_page(browser, **viewport):
    context = browser.new_context(viewport=viewport or {"width": 1440, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    return page


def wait_live(page):
    page.wait_for_selector('#connection[data-state="live"]', timeout=15000)


def keep_screenshot(page, name):
    path = Path(os.environ.get("SCREENSHOT_DIR", "/tmp")) / f"pulseboard-{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(exist_ok=True)
        shutil.copy(path, SCREENSHOTS / f"{name}.png")


def test_the_dashboard_renders_and_goes_live(browser, server, staff, hth_sim):
    page = new_page(browser)
    log_in(page, server)
    page.wait_for_function("() => document.querySelectorAll('#feed [data-event-id]').length >= 50", timeout=15000)
    wait_live(page)
    build = hth_sim.start_build(project="luotsi", repository="chef", name="Development")
    page.wait_for_selector(f'#live-list [data-event-id="{build}"][data-live]', timeout=15000)
    page.wait_for_selector(f'#feed [data-event-id="{build}"]')
    assert page.is_hidden("#stale-banner")
    assert page.console_errors == []
    keep_screenshot(page, "dashboard")


def test_a_progress_bump_moves_the_open_wall_without_a_reload(browser, server, hth_sim):
    screen = screens.screen_named("Office TV")
    page = new_page(browser, width=1920, height=1080)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)
    page.evaluate("window.__sameDocument = true")
    build = hth_sim.start_build(project="luotsi", repository="chef", name="Release")
    page.wait_for_selector(f'#wall-builds [data-event-id="{build}"]', timeout=15000)
    hth_sim.set_progress(build, 55)
    page.evaluate(f"window.__tile = document.querySelector('#wall-builds [data-event-id=\"{build}\"]')")
    page.wait_for_selector(f'#wall-builds [data-event-id="{build}"] [data-progress="55"]', timeout=15000)
    hth_sim.set_progress(build, 100)
    page.wait_for_selector(f'#wall-builds .tile--passed[data-event-id="{build}"]', state="attached", timeout=15000)
    assert page.evaluate("window.__sameDocument") is True
    assert page.evaluate(f"window.__tile === document.querySelector('#wall-builds [data-event-id=\"{build}\"]')"), (
        "the tile changed in place"
    )
    assert page.console_errors == []
    keep_screenshot(page, "wall")


def test_a_note_edited_upstream_appears_on_the_open_timeline(browser, server, staff, ou_sim):
    incident = ou_sim.add_incident("Checkout errors", state="Acknowledged", severity="Critical")
    note = ou_sim.add_note(incident["_id"], "Investigating elevated **checkout** errors.")
    page = new_page(browser)
    log_in(page, server)
    page.goto(f"{server.url}/incidents/{incident['_id']}/")
    wait_live(page)
    page.wait_for_selector(f'[data-note-id="{note["_id"]}"]', timeout=15000)
    ou_sim.edit_note(note["_id"], note="Rolled back the **payment** service; errors are falling.")
    page.wait_for_selector(f'[data-note-id="{note["_id"]}"] strong:text("payment")', timeout=15000)
    posted = page.inner_text(f'[data-note-id="{note["_id"]}"] time')
    assert re.search(r"\b([01]\d|2[0-3]):[0-5]\d \S+ · \d+ s ago$", posted), "absolute time with its zone, and relative"
    assert page.is_visible("#incident-header time[data-format=elapsed]")
    keep_screenshot(page, "timeline")


def test_the_wall_says_it_is_stale_while_daphne_is_down_and_recovers(browser, server, hth_sim):
    screen = screens.screen_named("Office TV")
    page = new_page(browser, width=1920, height=1080)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)
    server.kill()
    page.wait_for_selector("#stale-banner:not([hidden])", timeout=20000)
    assert "Not live since" in page.inner_text("#stale-banner")
    page.wait_for_function("() => getComputedStyle(document.querySelector('.wall-panels')).opacity < 0.5", timeout=5000)  # dims
    keep_screenshot(page, "wall-stale")
    started_while_down = hth_sim.start_build(project="atlas", repository="atlas", name="Nightly")
    server.start()
    page.wait_for_selector(f'#wall-builds [data-event-id="{started_while_down}"]', timeout=60000)
    page.wait_for_selector("#stale-banner[hidden]", state="attached", timeout=20000)


def test_script_in_a_note_or_an_event_never_runs(browser, server, staff, hth_sim, ou_sim):
    incident = ou_sim.add_incident("XSS drill")
    ou_sim.add_note(incident["_id"], XSS)
    hth_sim.add_event(target="build", operation="completed", project="luotsi", name=XSS, resources=["javascript:window.__xss=1"])
    page = new_page(browser)
    log_in(page, server)
    page.goto(f"{server.url}/incidents/{incident['_id']}/")
    wait_live(page)
    ou_sim.add_note(incident["_id"], "pushed live: " + XSS)  # through the socket too
    page.wait_for_selector("text=pushed live", timeout=15000)
    page.goto(server.url + "/")
    wait_live(page)
    for link in page.query_selector_all("a"):
        assert not (link.get_attribute("href") or "").lower().startswith("javascript:")
    assert page.evaluate("window.__xss") is None


# An id that closes its attribute and adds a form htmx would submit at once (the review's attack,
# aimed here at a harmless URL), and text that tries the same in every other field.
HOSTILE_ID = 'x" hx-swap-oob=beforeend:main><form hx-post=hostile-post hx-trigger=load><b x="'
HOSTILE_TEXT = '"><form hx-post=hostile-post hx-trigger=load><img src=x onerror="window.__xss = 1">'
DOM_SHAPE = """() => ({
    forms: document.forms.length,
    attributes: [...new Set([...document.querySelectorAll("*")].flatMap(el => el.getAttributeNames()))].sort(),
    hostile: document.querySelectorAll("[hx-post], [hx-trigger], [onerror], img, b").length,
})"""


def test_hostile_upstream_ids_and_text_stay_text_on_open_pages(browser, server, staff, hth_sim, ou_sim):
    screen = screens.screen_named("Office TV")
    page = new_page(browser)
    posts = []
    page.on("request", lambda request: posts.append(request.url) if "hostile-post" in request.url else None)
    log_in(page, server)
    wait_live(page)
    wall = new_page(browser, width=1920, height=1080)
    wall.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(wall)
    before = page.evaluate(DOM_SHAPE)

    build = hth_sim.add_event(id=HOSTILE_ID, target="build", operation="completed", project=HOSTILE_TEXT, name=HOSTILE_TEXT)
    hth_sim.set_progress(build["id"], 10)  # running: its row goes to "Running now" too
    incident = ou_sim.add_incident(HOSTILE_TEXT, _id=f"inc/{HOSTILE_TEXT}")  # a "/" once took / and the wall down
    ou_sim.add_note(incident["_id"], HOSTILE_TEXT)

    shows_hostile_build = """(id) => ["#feed", "#live-list"].every(list =>
        [...document.querySelectorAll(list + " [data-event-id]")].some(row => row.dataset.eventId === id))"""
    page.wait_for_function(shows_hostile_build, arg=HOSTILE_ID, timeout=20000)
    page.wait_for_selector("#open-incidents .incident-card >> text=hostile-post", timeout=20000)
    wall.wait_for_selector("#wall-incidents >> text=hostile-post", timeout=20000)
    page.wait_for_timeout(1000)  # time for anything injected to fire

    after = page.evaluate(DOM_SHAPE)
    assert after["forms"] == before["forms"] and after["hostile"] == 0
    rows_and_cards = {
        "data-live",
        "data-finished",
        "max",
        "data-incident-id",
        "data-note-id",
        "data-color",
        "data-tone",
        "data-cursor",
        "data-duration",
        "data-seconds",
        "data-format",
        "data-change-event-id",
        "style",
    }  # style: live.js
    assert set(after["attributes"]) <= set(before["attributes"]) | rows_and_cards
    assert posts == [] and page.evaluate("window.__xss") is None and wall.evaluate("window.__xss") is None
    wait_live(page)
    wait_live(wall)
    assert page.console_errors == [] and wall.console_errors == []


def test_sockets_without_credentials_or_from_a_foreign_origin_are_refused(browser, server, hth_sim):
    screen = screens.screen_named("Office TV")
    page = new_page(browser)
    page.goto(server.url + "/accounts/login/")
    probe = """url => new Promise(done => {
        const socket = new WebSocket(url);
        socket.onopen = () => done("open");
        socket.onclose = event => done("closed " + event.code);
    })"""
    ws = server.url.replace("http", "ws")
    assert page.evaluate(probe, f"{ws}/ws/live/?page=dashboard").startswith("closed")
    assert page.evaluate(probe, f"{ws}/ws/live/?page=wall").startswith("closed")
    assert page.evaluate(probe, f"{ws}/ws/live/?page=wall&screen={screen.key}") == "open", "the same origin with a kiosk token"
    page.goto(f"http://foreign.test:{server.port}/healthz")  # another site, served from this machine
    assert page.evaluate(probe, f"{ws}/ws/live/?page=wall&screen={screen.key}").startswith("closed")
    page.goto(f"{hth_sim.url}/")  # an allowed host name, on another port: another origin all the same
    assert page.evaluate(probe, f"{ws}/ws/live/?page=wall&screen={screen.key}").startswith("closed")


def test_a_revoked_kiosk_link_stops_the_wall(browser, server, staff):
    screen = screens.screen_named("Office TV")
    wall = new_page(browser, width=1920, height=1080)
    sockets = []
    wall.on("websocket", lambda socket: sockets.append(socket))
    wall.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(wall)

    admin = new_page(browser)
    log_in(admin, server)
    admin.goto(f"{server.url}/admin/dashboard/screen/")
    admin.check(f'input[name="_selected_action"][value="{screen.pk}"]')
    admin.select_option('select[name="action"]', "revoke_screens")
    admin.click('button[name="index"]')
    admin.wait_for_selector("text=revoked")

    wall.wait_for_selector("#revoked:not([hidden])", timeout=15000)
    opened = len(sockets)
    wall.wait_for_timeout(4000)
    assert len(sockets) == opened, "a revoked screen stops retrying"
    assert wall.is_hidden("#stale-banner")


def test_the_wall_reloads_itself_when_the_server_version_changes(browser, server):
    screen = screens.screen_named("Office TV")
    page = new_page(browser, width=1920, height=1080)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)
    page.evaluate("window.__before = true; document.body.dataset.version = 'yesterday'")  # as if rendered by the old code
    page.wait_for_function("() => window.__before === undefined", timeout=30000)
    wait_live(page)


def test_the_wall_says_so_when_an_upstream_keeps_failing(browser, server, hth_sim):
    screen = screens.screen_named("Office TV")
    page = new_page(browser, width=1920, height=1080)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)
    hth_sim.fail_next(100_000, status=503)
    # Under load the banner may first name a slow OneUptime pass (its text names Helix TeamHub too): wait for the 503.
    page.wait_for_function(
        "() => { const b = document.getElementById('stale-banner'); return !b.hidden && /Helix TeamHub[^;]*503/.test(b.innerText); }",
        timeout=40000,
    )


def test_the_demo_runs_and_its_pages_are_what_the_readme_shows(browser):
    """`manage.py demo` end to end; with UPDATE_SCREENSHOTS=1 its pages become the README's screenshots."""
    import re
    import time

    port = free_port()
    demo = start_manage("demo", "--port", str(port), env=base_env())
    try:
        wait_for_port(port, demo, timeout=60)
        printed = ""
        while "Ctrl-C stops everything" not in printed:
            printed += demo.stdout.readline()
        password = re.search(r"with password '([^']+)'", printed).group(1)
        kiosk = re.search(r"kiosk link\): (\S+)", printed).group(1)
        url = f"http://127.0.0.1:{port}"

        page = new_page(browser)
        page.goto(url + "/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        wait_live(page)
        deadline = time.monotonic() + 90
        while not page.query_selector("#live-list [data-live]") and time.monotonic() < deadline:
            page.wait_for_timeout(1000)  # the simulator starts builds every few ticks
        assert page.query_selector("#feed [data-event-id]") and page.query_selector("#open-incidents .incident-card")
        keep_screenshot(page, "demo-dashboard")

        page.goto(url + page.get_attribute("#feed a.name[href^='/pipelines/']", "href"))
        page.wait_for_selector("#pipeline-header[data-pipeline]")
        wait_live(page)
        keep_screenshot(page, "pipeline-page")

        page.goto(url + "/")
        page.click("#open-incidents .incident-card a")
        page.wait_for_selector("#timeline [data-note-id]")
        wait_live(page)
        keep_screenshot(page, "demo-timeline")

        wall = new_page(browser, width=1920, height=1080)
        wall.goto(kiosk)
        wait_live(wall)
        wall.wait_for_timeout(1500)
        keep_screenshot(wall, "demo-wall")
        assert page.console_errors == [] and wall.console_errors == []
    finally:
        demo.terminate()
        demo.wait(timeout=20)


@pytest.mark.skipif(not settings.REDIS_URL, reason="pushes cross processes only through Redis")
def test_with_redis_a_separate_poller_reaches_walls_on_every_daphne(browser, hth_sim, ou_sim, tmp_path):
    hth_sim.generate(20)
    env = server_env(hth_sim, ou_sim)
    screen = screens.screen_named("Office TV")
    with open(tmp_path / "processes.log", "w") as log:
        poller = start_manage("poll", env=env, log=log)
        servers = [Server(env, log, "--no-poll"), Server(env, log, "--no-poll")]
        try:
            for server in servers:
                server.start()
            walls = []
            for server in servers:
                wall = new_page(browser, width=1920, height=1080)
                wall.goto(f"{server.url}/wall/?key={screen.key}")
                wait_live(wall)
                walls.append(wall)
            build = hth_sim.start_build(project="luotsi", repository="chef", name="Release")
            hth_sim.set_progress(build, 35)
            for wall in walls:
                wall.wait_for_selector(f'#wall-builds [data-event-id="{build}"] [data-progress="35"]', timeout=20000)
        finally:
            for server in servers:
                server.stop()
            poller.terminate()
            poller.wait(timeout=20)


def test_a_rotating_wall_shows_one_panel_at_a_time_for_its_dwell(browser, server):
    screen = screens.screen_named("Lobby")
    screen.rotate = True
    screen.jump_to_failures = (
        False  # the demo data has failed builds, which would hold the builds panel (test_wall_screen_browser.py)
    )
    screen.save()
    screen.panels.all().delete()
    ScreenPanel.objects.create(screen=screen, panel="builds", position=0, dwell_seconds=3)
    ScreenPanel.objects.create(screen=screen, panel="incidents", position=1, dwell_seconds=3)
    page = new_page(browser, width=1920, height=1080)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)
    # Under load the socket may go live after the first dwell: whichever panel shows, the other is hidden, then next.
    shown, hidden = (
        ("#wall-builds", "#wall-incidents") if page.is_visible("#wall-builds") else ("#wall-incidents", "#wall-builds")
    )
    assert page.is_visible(shown) and page.is_hidden(hidden)
    page.wait_for_selector(hidden, state="visible", timeout=6000)
    assert page.is_hidden(shown)
    assert not page.query_selector("#wall-activity"), "panels the screen does not show are not rendered"


def test_the_note_form_previews_markdown_as_the_pages_render_it(browser, server, staff):
    page = new_page(browser)
    log_in(page, server)
    page.goto(f"{server.url}/admin/dashboard/incidentnote/add/")
    page.fill("#id_note", "## Update\n\n**Mitigated**; see [status](https://status.example.com) " + XSS)
    page.wait_for_selector("#note-preview strong:text('Mitigated')", timeout=10000)
    assert page.inner_html("#note-preview").count("<h2>Update</h2>") == 1
    assert page.evaluate("window.__xss") is None
    assert page.console_errors == []
