"""`pulseboard-build` as a CI job runs it: the installed console script, in a process of its own, against the
Helix TeamHub simulator over loopback, with no Django settings and no database in its environment."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboard.models import HookDelivery
from tests.processes import free_port
from tests.raw_http import json_answer, raw_server

SCRIPT = Path(sys.executable).with_name("pulseboard-build")


def reporter_env(sim, **overrides: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DJANGO", "DATABASE", "HTH_", "PULSEBOARD"))}
    keys = {"HTH_API_URL": sim.url, "HTH_COMPANY_KEY": sim.company_key, "HTH_BOT_ACCOUNT_KEY": sim.bot_account_key}
    return env | keys | overrides


def build(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


def event(sim, event_id: str) -> dict:
    return next(item for item in sim.events if item["id"] == event_id)


def progress_sent(sim, event_id: str) -> list[int]:
    return [json.loads(body)["progress"] for method, path, body in sim.writes if method == "PUT" and path.endswith(event_id)]


def reported_build(sim) -> dict:
    (event_id,) = {path.rsplit("/", 1)[1] for method, path, _ in sim.writes if method == "PUT"}
    return event(sim, event_id)


START = ["start", "--project", "luotsi", "--repository", "chef", "--name", "Development"]


def test_start_progress_finish_report_a_build(hth_sim):
    env = reporter_env(hth_sim)
    started = build(*START, "--commit", "d847a7a2", "--resource", "https://ci.example.com/job/1", env=env)
    assert started.returncode == 0, started.stderr
    event_id = started.stdout.strip().splitlines()[-1]
    created = event(hth_sim, event_id)
    assert (created["target"], created["progress"], created["objects"]["name"]) == ("build", 0, "Development")
    assert created["objects"]["resources"] == ["https://ci.example.com/job/1"]

    assert build("progress", event_id, "40", env=env).returncode == 0
    assert event(hth_sim, event_id)["progress"] == 40
    assert build("finish", event_id, "--failed", env=env).returncode == 0
    assert (event(hth_sim, event_id)["progress"], event(hth_sim, event_id)["operation"]) == (100, "failed")


@pytest.mark.parametrize(
    "args, overrides, line",
    [
        (
            START,
            {"HTH_BOT_ACCOUNT_KEY": "demo-account-key"},
            "could not start the build: Helix TeamHub answered 403: Only a bot account can create events",
        ),
        (
            ["start", "--project", "nosuch", "--repository", "chef"],
            {},
            "could not start the build: Helix TeamHub answered 422: Validation failed (project must be an existing project)",
        ),
        (START, {"HTH_BOT_ACCOUNT_KEY": ""}, "HTH_BOT_ACCOUNT_KEY must be set (HTH_BOT_ACCOUNT_KEY is a bot account's key)"),
    ],
)
def test_api_errors_come_back_as_one_line(hth_sim, args, overrides, line):
    result = build(*args, env=reporter_env(hth_sim, **overrides))
    assert result.returncode == 1
    assert result.stderr == f"pulseboard-build: {line}\n"


def test_a_put_on_a_finished_build_is_one_line(hth_sim):
    env = reporter_env(hth_sim)
    event_id = build(*START, env=env).stdout.split()[-1]
    build("finish", event_id, "--passed", env=env)
    result = build("progress", event_id, "50", env=env)
    assert result.returncode == 1
    assert result.stderr == (
        f"pulseboard-build: could not update build {event_id}: Helix TeamHub answered 422: "
        "Validation failed (base only an incomplete build event can be updated)\n"
    )


def test_run_reports_the_command_and_exits_with_its_code(hth_sim):
    command = "import sys, time; print('compiling', flush=True); time.sleep(1.5); print('oops', file=sys.stderr); sys.exit(3)"
    result = build(
        "run", *START[1:], "--estimate", "2", "--every", "0.2", "--", sys.executable, "-c", command, env=reporter_env(hth_sim)
    )
    assert result.returncode == 3
    assert result.stdout == "compiling\n"  # passed through, nothing of ours on stdout
    assert result.stderr == "oops\n"
    created = reported_build(hth_sim)
    assert (created["progress"], created["operation"]) == (100, "failed")
    sent = progress_sent(hth_sim, created["id"])
    assert sent[-1] == 100 and len(sent) >= 3
    assert all(0 < value < 100 for value in sent[:-1]) and sent[:-1] == sorted(sent[:-1])


def test_run_estimates_from_the_builds_recent_runs(hth_sim):
    now = datetime.now(UTC)
    for age in (3, 2, 1):  # earlier runs of the same build took one second each
        start = now - timedelta(minutes=age)
        hth_sim.add_event(
            target="build", operation="completed", project="luotsi", repository="chef", name="Development", progress=100,
            created_at=start, updated_at=start + timedelta(seconds=1), timestamp=start,
        )  # fmt: skip
    result = build(
        "run", *START[1:], "--every", "0.2", "--", sys.executable, "-c", "import time; time.sleep(1.6)", env=reporter_env(hth_sim)
    )
    assert result.returncode == 0, result.stderr
    created = reported_build(hth_sim)
    sent = progress_sent(hth_sim, created["id"])
    assert max(sent[:-1]) >= 80  # the default ten-minute estimate would still be at 0 or 1
    assert max(sent[:-1]) < 100 and sent[-1] == 100
    assert created["operation"] == "completed"


def test_run_with_the_api_down_runs_the_command_anyway(hth_sim):
    env = reporter_env(hth_sim, HTH_API_URL=f"http://127.0.0.1:{free_port()}/api")
    result = build("run", *START[1:], "--", sys.executable, "-c", "print('tests ran'); raise SystemExit(4)", env=env)
    assert result.returncode == 4
    assert result.stdout == "tests ran\n"
    (line,) = result.stderr.splitlines()
    assert line.startswith("pulseboard-build: could not read recent builds: Helix TeamHub at http://127.0.0.1:")
    assert line.endswith("is unreachable (connection refused or reset); running the command without reporting the build")


def test_run_without_credentials_runs_the_command_anyway(hth_sim):
    result = build("run", *START[1:], "--", sys.executable, "-c", "pass", env=reporter_env(hth_sim, HTH_COMPANY_KEY=""))
    assert result.returncode == 0
    assert "HTH_COMPANY_KEY must be set" in result.stderr
    assert not hth_sim.writes


def test_run_of_a_missing_command_fails_the_build_with_127(hth_sim):
    result = build("run", *START[1:], "--", "no-such-command-anywhere", env=reporter_env(hth_sim))
    assert result.returncode == 127
    assert "cannot run no-such-command-anywhere" in result.stderr
    created = reported_build(hth_sim)
    assert created["operation"] == "failed"


@pytest.mark.django_db(transaction=True)
def test_each_answer_is_handed_to_pulseboards_receiver(hth_sim, live_server, settings):
    settings.HTH_WEBHOOK_SECRET = "forwarded"
    env = reporter_env(hth_sim, PULSEBOARD_HOOK_URL=f"{live_server.url}/hooks/hth/", PULSEBOARD_HOOK_SECRET="forwarded")
    started = build(*START, env=env)
    assert started.returncode == 0 and started.stderr == ""
    (delivery,) = HookDelivery.objects.all()
    assert delivery.payload == {"id": started.stdout.split()[-1]}  # the receiver queues the id to read back


RUN_ECHO = ["run", *START[1:], "--estimate", "60", "--", sys.executable, "-c", "print('tests ran'); raise SystemExit(4)"]


def raw_env(url: str, **overrides: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DJANGO", "DATABASE", "HTH_", "PULSEBOARD"))}
    return env | {"HTH_API_URL": f"{url}/api", "HTH_COMPANY_KEY": "c", "HTH_BOT_ACCOUNT_KEY": "b"} | overrides


def test_run_with_an_answer_that_has_no_event_id_runs_the_command_anyway():
    with raw_server(lambda conn, request, stop: conn.sendall(json_answer("201 Created", b"{}"))) as url:
        result = build(*RUN_ECHO, env=raw_env(url))
    assert (result.returncode, result.stdout) == (4, "tests ran\n")
    assert result.stderr == (
        "pulseboard-build: could not start the build: Helix TeamHub's answer has no event id; "
        "running the command without reporting the build\n"
    )


def drip_body(conn, request, stop):
    conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    while not stop.wait(0.5):  # a byte at a time, each well inside the 15 s read timeout
        conn.sendall(b" ")


def drip_head(conn, request, stop):
    conn.sendall(b"HTTP/1.1 201 Created\r\nX-Slow: ")
    while not stop.wait(0.5):
        conn.sendall(b"a")


@pytest.mark.parametrize("answer", [drip_body, drip_head], ids=["body", "headers"])
def test_run_with_an_answer_that_drips_in_gives_up_at_the_deadline_and_runs_the_command(answer):
    with raw_server(answer) as url:
        result = build(*RUN_ECHO, env=raw_env(url, PULSEBOARD_CALL_DEADLINE_SECONDS="2"), timeout=120)
    assert (result.returncode, result.stdout) == (4, "tests ran\n")
    assert result.stderr == (
        f"pulseboard-build: could not start the build: Helix TeamHub at {url}/api is unreachable "
        "(no answer within 2 s); running the command without reporting the build\n"
    )


def test_upstream_words_reach_the_ci_log_without_terminal_escapes():
    message = json.dumps({"message": "\x1b[2J\x1b[1;31mFAILED\x1b[0m\u202eevil\x07"}).encode()
    with raw_server(lambda conn, request, stop: conn.sendall(json_answer("422 Unprocessable Entity", message))) as url:
        result = build(*START, env=raw_env(url))
    assert result.returncode == 1
    assert result.stderr == (
        "pulseboard-build: could not start the build: Helix TeamHub answered 422: "
        "\\x1b[2J\\x1b[1;31mFAILED\\x1b[0m\\u202eevil\\x07\n"
    )


def test_a_password_in_the_api_url_is_never_printed():
    env = raw_env("http://ci:s3cret@127.0.0.1:" + str(free_port()), PULSEBOARD_HOOK_URL="http://u:hookpass@127.0.0.1:1/")
    result = build(*RUN_ECHO, env=env)
    assert result.returncode == 4
    assert "s3cret" not in result.stderr and "Helix TeamHub at http://ci:***@127.0.0.1:" in result.stderr


def test_the_hook_secret_is_never_sent_where_a_redirect_points(hth_sim):
    seen = []

    def elsewhere(conn, request, stop):
        seen.append(request)
        conn.sendall(json_answer("202 Accepted", b"{}"))

    with raw_server(elsewhere) as other:

        def redirect(conn, request, stop):
            conn.sendall(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {other}/steal\r\nContent-Length: 0\r\n\r\n".encode())

        with raw_server(redirect) as hook:
            env = reporter_env(hth_sim, PULSEBOARD_HOOK_URL=f"{hook}/hooks/hth/", PULSEBOARD_HOOK_SECRET="forwarded")
            started = build(*START, env=env)
    assert started.returncode == 0
    assert not seen, "nothing, let alone the secret, went to where the redirect pointed"
    assert "answered 307, a redirect, which is not followed" in started.stderr


def test_the_reporter_loads_no_django():
    probe = "import sys, dashboard.upstreams.hth.reporter; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        cwd=Path(__file__).parent.parent,
    )
    assert result.stdout.strip() == "[]", result.stderr
