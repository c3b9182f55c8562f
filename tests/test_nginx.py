"""Behind a real proxy: Debian's nginx, configured by the README's example, in front of `serve` nodes.

Clients reach nginx from addresses of their own on loopback (127.0.0.2 for the admin, 127.0.0.66 for
someone guessing), so the nodes can tell them apart only by what nginx reports in X-Forwarded-For.
"""

import os
import re
import ssl
import time

import pytest
import requests
import urllib3
import websockets.sync.client
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from requests.adapters import HTTPAdapter
from websockets.exceptions import ConnectionClosed, InvalidStatus

from dashboard.live import screens
from tests import nginx
from tests.processes import base_env
from tests.test_browser import Server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # CI installs both (.ci/run): there a missing one fails the test instead.
    pytest.mark.skipif(not nginx.available() and not os.environ.get("CI"), reason="needs nginx-light and openssl"),
]

# The README's settings for HTTPS behind a proxy.
PROXIED_ENV = {
    "DJANGO_ALLOWED_HOSTS": f"{nginx.HOST},127.0.0.1",  # and the nodes' own addresses, for a scraper
    "METRICS_TOKEN": "a-long-scraper-token",
    "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://{nginx.HOST}",
    "DJANGO_BEHIND_HTTPS_PROXY": "true",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
}
ADMIN, ATTACKER = "127.0.0.2", "127.0.0.66"
PASSWORD = "a long pass phrase"


class FromAddress(HTTPAdapter):
    """Connections from one loopback address, so that nginx sees a client of its own."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


class Client:
    """A `requests` session that reaches the proxy by its name (nginx.HOST) from `address`."""

    def __init__(self, proxy: nginx.Nginx, address: str):
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # the test's own certificate
        self.proxy, self.session = proxy, requests.Session()
        self.session.mount("https://", FromAddress(address))
        self.session.mount("http://", FromAddress(address))

    def request(self, method: str, path: str, *, plain: bool = False, headers=None, **kwargs) -> requests.Response:
        port = self.proxy.http_port if plain else self.proxy.https_port
        url = f"{'http' if plain else 'https'}://127.0.0.1:{port}{path}"
        headers = {"Host": f"{nginx.HOST}:{port}", **(headers or {})}
        return self.session.request(method, url, headers=headers, allow_redirects=False, timeout=15, verify=False, **kwargs)

    def log_in(self, username: str, password: str, *, forwarded_for: str | None = None) -> requests.Response:
        forged = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        form = self.request("GET", "/accounts/login/", headers=forged)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        return self.request(
            "POST",
            "/accounts/login/",
            data={"csrfmiddlewaretoken": token, "username": username, "password": password},
            headers={"Referer": f"{self.proxy.url}/accounts/login/", **forged},
        )


@pytest.fixture
def proxied_node(tmp_path, request):
    edit = getattr(request, "param", None)  # a change to the README's site, for a test of what it breaks
    with open(tmp_path / "serve.log", "w") as log:
        node = Server(base_env(**PROXIED_ENV), log)
        node.start()
        try:
            with nginx.Nginx(tmp_path, nodes=[f"127.0.0.1:{node.port}"], edit=edit) as proxy:
                proxy.node = node
                yield proxy
        finally:
            node.stop()
    print((tmp_path / "serve.log").read_text()[-3000:])


def test_guessing_through_the_proxy_locks_out_the_guesser_and_never_the_admin(proxied_node):
    get_user_model().objects.create_superuser("admin", "admin@example.com", PASSWORD)
    attacker, admin = Client(proxied_node, ATTACKER), Client(proxied_node, ADMIN)
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        # Claiming to be the admin's address, or a fresh one each time, changes nothing.
        forged = f"{ADMIN}, 198.51.100.{attempt}" if attempt % 2 else ADMIN
        assert attacker.log_in("admin", "a guess", forwarded_for=forged).status_code in (200, 429)
    assert attacker.log_in("admin", PASSWORD, forwarded_for=ADMIN).status_code == 429, "the guesser is locked out"
    assert attacker.log_in("admin", PASSWORD).status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}, "counted against the guesser"
    assert admin.log_in("admin", PASSWORD).status_code == 302, "the admin, from another address, still gets in"


def test_plain_http_is_redirected_by_the_proxy_and_pages_come_back_over_https(proxied_node):
    client = Client(proxied_node, ADMIN)
    redirect = client.request("GET", "/wall/?key=x", plain=True)
    assert redirect.status_code == 301
    assert redirect.headers["Location"] == f"{proxied_node.url}/wall/?key=x"
    page = client.request("GET", "/accounts/login/")
    assert page.status_code == 200 and page.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in page.headers["Set-Cookie"], "the node knows the page is HTTPS (X-Forwarded-Proto)"


def test_a_scraper_reads_each_node_over_plain_http_and_the_proxy_keeps_metrics_to_itself(proxied_node):
    bearer = {"Authorization": f"Bearer {PROXIED_ENV['METRICS_TOKEN']}"}
    direct = requests.get(f"{proxied_node.node.url}/metrics", headers=bearer, allow_redirects=False, timeout=10)
    assert direct.status_code == 200, "not redirected to https on the node's own port"
    assert "pulseboard_sockets_connected" in direct.text
    assert requests.get(f"{proxied_node.node.url}/healthz", allow_redirects=False, timeout=10).status_code == 200
    assert Client(proxied_node, ADMIN).request("GET", "/metrics", headers=bearer).status_code == 404, "nor through the proxy"
    login = requests.get(f"{proxied_node.node.url}/accounts/login/", allow_redirects=False, timeout=10)
    assert login.status_code == 301, "a page asked for over plain HTTP still goes to HTTPS"


def wall_socket(proxy: nginx.Nginx, key: str = "no-such-key"):
    """A wall's socket through the proxy, from a page at https://127.0.0.1:<proxy's port> (an allowed host here)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    origin = f"https://127.0.0.1:{proxy.https_port}"
    uri = f"wss://127.0.0.1:{proxy.https_port}/ws/live/?page=wall&screen={key}"
    return websockets.sync.client.connect(uri, ssl=context, origin=origin, open_timeout=10)


def open_socket(proxy: nginx.Nginx) -> None:
    with wall_socket(proxy):
        pass  # the handshake passed the origin check; an unknown key is closed afterwards, with 4403


def test_sockets_and_forms_pass_through_the_readme_config_on_a_non_default_port(proxied_node):
    open_socket(proxied_node)
    assert Client(proxied_node, ADMIN).log_in("nobody", "wrong").status_code == 200, "the form, not a CSRF 403"


DEBIAN_PROXY_PARAMS_HOST = "proxy_set_header Host $host;"  # what /etc/nginx/proxy_params sets


@pytest.mark.parametrize(
    "proxied_node", [lambda site: site.replace("proxy_set_header Host $http_host;", DEBIAN_PROXY_PARAMS_HOST)], indirect=True
)
def test_with_debians_proxy_params_host_every_socket_and_form_fails_as_the_readme_warns(proxied_node):
    with pytest.raises(InvalidStatus) as refused:
        open_socket(proxied_node)
    assert refused.value.response.status_code == 403, "the origin check: the node sees no port"
    assert Client(proxied_node, ADMIN).log_in("nobody", "wrong").status_code == 403, "CSRF: the referer's port differs"


def test_after_an_nginx_reload_the_old_worker_lets_go_of_open_sockets_within_its_shutdown_timeout(proxied_node):
    """worker_shutdown_timeout (README): without it a wall's socket keeps an old worker, and the old
    configuration's node, for as long as the socket lives; a drained node would never lose its walls."""
    with wall_socket(proxied_node, screens.screen_named("Office TV").key) as socket:
        assert socket.recv(timeout=15).startswith("<!--snapshot")
        reloaded = time.monotonic()
        proxied_node.set_nodes(proxied_node.nodes)
        with pytest.raises(ConnectionClosed):
            while time.monotonic() - reloaded < 30:
                socket.recv(timeout=30)  # heartbeats, until the old worker closes the connection
        closed_after = time.monotonic() - reloaded
    assert closed_after < 15, f"closed {closed_after:.1f} s after the reload (worker_shutdown_timeout 10s)"
