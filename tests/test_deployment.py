"""With DJANGO_DEBUG off: plain HTTP behind a proxy, whitenoise after collectstatic, createsuperuser --noinput."""

import re

import pytest
import requests
from django.contrib.auth import get_user_model

from tests.processes import base_env, free_port, manage, start_daphne

pytestmark = pytest.mark.django_db(transaction=True)


def production_env(**overrides):
    return base_env(
        DJANGO_SETTINGS_MODULE="config.settings", DJANGO_DEBUG="false", DJANGO_SECRET_KEY="a-real-secret-" * 4, **overrides
    )


def test_debug_off_serves_plain_http_and_hashed_static_files_through_whitenoise():
    env = production_env()
    assert manage("migrate", "--noinput", env=env).returncode == 0
    assert manage("collectstatic", "--noinput", env=env).returncode == 0
    port = free_port()
    server = start_daphne(port=port, env=env)
    try:
        health = requests.get(f"http://127.0.0.1:{port}/healthz", allow_redirects=False, timeout=10)
        assert health.status_code == 200, "no forced HTTPS redirect behind a proxy"
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        stylesheet = re.search(r'href="(/static/dashboard/pulseboard\.[0-9a-f]{12}\.css)"', page.text).group(1)
        css = requests.get(f"http://127.0.0.1:{port}{stylesheet}", timeout=10)
        assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
        assert "immutable" in css.headers["Cache-Control"], "whitenoise serves hashed files forever-cacheable"
        htmx = re.search(r'src="(/static/django_htmx/htmx-2\.min\.[0-9a-f]{12}\.js)"', page.text).group(1)
        assert requests.get(f"http://127.0.0.1:{port}{htmx}", timeout=10).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_server_refuses_to_start_without_a_secret_key():
    env = production_env()
    del env["DJANGO_SECRET_KEY"]
    result = manage("check", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Configuration error: DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off (make demo generates one in data/secret_key)"
    )


def test_createsuperuser_noinput_works():
    env = production_env(
        DJANGO_SUPERUSER_USERNAME="ops", DJANGO_SUPERUSER_PASSWORD="a long pass phrase", DJANGO_SUPERUSER_EMAIL="ops@example.com"
    )
    result = manage("createsuperuser", "--noinput", env=env)
    assert result.returncode == 0, result.stderr
    assert get_user_model().objects.get(username="ops").is_superuser


# The production settings README's "Running it for real" documents for HTTPS behind a proxy.
DOCUMENTED_HTTPS_ENV = {
    "DJANGO_ALLOWED_HOSTS": "pulse.example.com",
    "DJANGO_BEHIND_HTTPS_PROXY": "true",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://pulse.example.com",
}


def test_check_deploy_is_clean_with_the_documented_https_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(**DOCUMENTED_HTTPS_ENV))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


def test_https_behind_a_proxy_sends_hsts_and_healthz_answers_plain_http():
    env = production_env(**DOCUMENTED_HTTPS_ENV | {"DJANGO_ALLOWED_HOSTS": "127.0.0.1"})
    port = free_port()
    server = start_daphne(port=port, env=env)
    try:
        secure = requests.get(f"http://127.0.0.1:{port}/accounts/login/", headers={"X-Forwarded-Proto": "https"}, timeout=10)
        assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert "form-action 'self'" in secure.headers["Content-Security-Policy"]
        plain = requests.get(f"http://127.0.0.1:{port}/accounts/login/", allow_redirects=False, timeout=10)
        assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")
        health = requests.get(f"http://127.0.0.1:{port}/healthz", allow_redirects=False, timeout=10)
        assert health.status_code == 200, "a monitor on the proxy's host may ask over plain HTTP"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_process_that_serves_sockets_runs_young_collections_less_often():
    """config/collector.py: with the default, full collections paused a 5,000-socket process every few seconds."""
    import subprocess
    import sys

    from config import collector

    probe = "import config.asgi, gc; print(gc.get_threshold()[0])"
    result = subprocess.run([sys.executable, "-c", probe], env=production_env(), capture_output=True, text=True, check=True)
    assert int(result.stdout) == collector.YOUNG_COLLECTION_EVERY
