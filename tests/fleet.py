"""A fleet of `serve` nodes behind nginx (tests/nginx.py), with releases to roll out and pages to watch.

Built for faults: a test starts nodes of a release, puts nginx in front, opens pages in chromium, and
then stops, kills or replaces nodes (or cuts what they depend on), asking of every page after each fault
whether it is live and current again, and how often it reloaded.

- `make_release(directory, name, change=...)`: a copy of this checkout, optionally changed (a new
  version), with its static files collected (hashed names, as in production) into its own STATIC_ROOT.
- `Node(release, port, env, log)`: `manage.py serve` of that release on a fixed port, so a node can be
  replaced by the next release on the same upstream address without touching nginx.
- `PageWatch(page)`: counts a page's loads (navigations) and reads what it says (live or not, its version, its styles).
- `open_pages(chromium, url, keys=…)`: a wall per kiosk key and a logged-in dashboard, each able to say
  whether it shows a build at a given progress; `problems(watch)`: what is wrong with a page right now.

Outages of what the nodes depend on fit the same mould: the nodes' DATABASE_URL and REDIS_URL point at
relays the test can cut (tests/db_relay.py), and the pages are asked the same questions
(tests/test_fleet_outages.py).
"""

import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tests.processes import BASE_DIR, wait_for_port

RELEASE_FILES = ("manage.py", "config", "dashboard", "templates", "static")


@dataclass
class Release:
    name: str
    path: Path


def make_release(directory: Path, name: str, *, env: dict[str, str], change=None) -> Release:
    """A copy of this checkout in `directory/name`; `change(path)` edits it; then collectstatic, as a deploy does."""
    path = Path(directory) / name
    for item in RELEASE_FILES:
        source = BASE_DIR / item
        if source.is_dir():
            shutil.copytree(source, path / item, ignore=shutil.ignore_patterns("__pycache__", "screenshots"))
        else:
            path.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, path / item)
    if change:
        change(path)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=path,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return Release(name, path)


class Node:
    """`manage.py serve` of one release (the copy's own packages come first on sys.path) on a fixed port."""

    def __init__(self, release: Release, port: int, env: dict[str, str], log):
        self.release, self.port, self.env, self.log = release, port, env, log
        self.address = f"127.0.0.1:{port}"
        self.url = f"http://{self.address}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Node":
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port)],
            cwd=self.release.path,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.process)
        return self

    def stop(self) -> None:
        """SIGTERM, as a deploy stops a node: it finishes its requests and closes its sockets."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


# What a page says about itself, read in the page: its socket's state, the banner, its version, its styles.
PAGE_STATE = """() => {
  const connection = document.getElementById("connection");
  const banner = document.getElementById("stale-banner");
  const styled = [...document.styleSheets].some(sheet => {
    try { return /pulseboard\\.[0-9a-f]{12}\\.css$/.test(sheet.href || "") && sheet.cssRules.length > 0; } catch (e) { return false; }
  });
  return {
    ready: document.readyState === "complete",
    state: connection ? connection.dataset.state : null,
    banner: banner && !banner.hidden ? banner.textContent.trim() : "",
    version: document.body ? document.body.dataset.version : null,
    styled,
    scripted: typeof window.htmx === "object",
  };
}"""


class PageWatch:
    """One page in the browser: how many times it loaded, and what it says now."""

    def __init__(self, page, name: str):
        self.page, self.name, self.loads = page, name, 0
        # Navigations of the page itself, counted as they commit: a reload may cut short a load that
        # never fires its `load` event.
        page.on("framenavigated", self._navigated)

    def _navigated(self, frame):
        if frame == self.page.main_frame:
            self.loads += 1

    def state(self) -> dict:
        try:
            return self.page.evaluate(PAGE_STATE)
        except Exception as exc:  # in the middle of a navigation
            return {"ready": False, "error": str(exc)[:100]}

    def shows(self, selector: str) -> bool:
        try:
            return self.page.query_selector(selector) is not None
        except Exception:
            return False


def wait_until_all(watches: list[PageWatch], check, *, timeout: float, poll: float = 0.25) -> float:
    """Seconds until `check(watch)` holds for every page at once; AssertionError with each page's state after `timeout`."""
    start = time.monotonic()
    while True:
        if all(check(watch) for watch in watches):
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError({watch.name: watch.state() for watch in watches})
        time.sleep(poll)


def proxied_page(chromium, **viewport):
    """A page that takes the test's own certificate (the browser fixture maps nginx.HOST to loopback)."""
    context = chromium.new_context(viewport=viewport or {"width": 1440, "height": 900}, ignore_https_errors=True)
    return context.new_page()


def open_pages(chromium, url: str, *, keys: list[str], username: str, password: str) -> list[PageWatch]:
    """A 1080p wall per kiosk key and a dashboard logged in through the login form (CSRF with the proxy's
    port in Host). Each watch's `updated(build, progress)` says whether its page shows that build's progress."""
    watches = []
    for index, key in enumerate(keys):
        watch = PageWatch(proxied_page(chromium, width=1920, height=1080), f"wall {index}")
        watch.updated = partial(_shows, watch, '#wall-builds [data-event-id="{build}"] [data-progress="{progress}"]')
        watch.page.goto(f"{url}/wall/?key={key}")
        watches.append(watch)
    watch = PageWatch(proxied_page(chromium), "dashboard")
    watch.updated = partial(_shows, watch, '#live-list [data-event-id="{build}"] progress[value="{progress}"]')
    watch.page.goto(f"{url}/")
    watch.page.fill("input[name=username]", username)
    watch.page.fill("input[name=password]", password)
    watch.page.click("button[type=submit]")
    watch.page.wait_for_selector("#feed")
    return watches + [watch]


def _shows(watch: PageWatch, selector: str, build: str, progress: int) -> bool:
    return watch.shows(selector.format(build=build, progress=progress))


def problems(state: dict) -> list[str]:
    """What is wrong with a loaded page: it lacks its styles or scripts, or it is not live and does not say so."""
    if not state.get("ready"):
        return []  # between two loads
    found = []
    if not (state["styled"] and state["scripted"]):
        found.append("unstyled or without scripts")
    if state["state"] not in ("live", "connecting") and not state["banner"]:
        found.append("not live and does not say so")
    return found
