"""`pulseboard-build`: CI jobs report their builds through Helix TeamHub's bot API, so every wall shows them live.

    pulseboard-build start --project P --repository R [--name N] [--commit SHA ...] [--resource URL ...]
    pulseboard-build progress ID N
    pulseboard-build finish ID --passed|--failed
    pulseboard-build run [start's options] [--estimate SECONDS] -- COMMAND ...

It reads HTH_API_URL, HTH_COMPANY_KEY and HTH_BOT_ACCOUNT_KEY (a bot account's key: only bots may
create build events). With PULSEBOARD_HOOK_URL and PULSEBOARD_HOOK_SECRET it also hands every event
Helix TeamHub answers to Pulseboard's /hooks/hth/, so walls show a bump within a fraction of a second
rather than at the next refresh. `run` never fails a CI job because of Helix TeamHub: it warns on stderr
and runs the command anyway, and exits with the command's own code. Each call ends within
CALL_DEADLINE_SECONDS however slowly an answer comes; a password in a URL is masked wherever a URL is
printed; the upstream's words reach the CI log without control characters (no terminal escapes); and
the hook secret is never sent to where a redirect points.

Standalone on purpose: requests and urllib3 only, no Django, no database and no settings, so it runs
on any CI agent that has the package installed (an import contract in pyproject.toml keeps it so).
Reference: ../shared/upstream-docs/helix-teamhub-events.txt (POST /events, PUT /events/:id).
"""

import argparse
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from dashboard.upstreams.bounded import (
    AnswerTooLarge,
    DeadlinePassed,
    WatchedAdapter,
    WatchedRetry,
    deadline,
    masked_url,
    read_body,
)

PROG = "pulseboard-build"
ACCEPT = "application/vnd.hth.v1"
TIMEOUT = (3.05, 15)  # connect, read: a down API must cost a CI job seconds, not minutes
# One call, its retries included (PULSEBOARD_CALL_DEADLINE_SECONDS): an answer that drips in must not hang the job.
CALL_DEADLINE_SECONDS = 30.0
HOOK_DEADLINE_SECONDS = 10.0
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # an event is a few KB; a page of recent builds well under this
# Characters a terminal acts on (C0 and C1 controls, DEL) and those that reorder what it shows (bidi controls).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
DEFAULT_ESTIMATE_SECONDS = 600.0  # a build with no completed run to learn from
RECENT_RUNS = 10
PROGRESS_EVERY_SECONDS = 5.0
ESTIMATE_SHARE = 90  # progress at the estimated end; past it, progress creeps towards 99 and never reaches 100


class ReportError(Exception):
    """One line saying why Helix TeamHub (or Pulseboard) did not take a report."""


class BuildApi:
    """The two bot calls and the one read the reporter needs, with urllib3's Retry for GET and PUT (never POST)."""

    def __init__(
        self,
        *,
        base_url: str,
        company_key: str,
        account_key: str,
        hook_url: str = "",
        hook_secret: str = "",
        call_deadline: float = CALL_DEADLINE_SECONDS,
    ):
        self.base_url = base_url.rstrip("/")
        self.call_deadline = call_deadline
        self.hook_url, self.hook_secret = hook_url, hook_secret
        retry = WatchedRetry(
            total=2,
            backoff_factor=0.2,
            status_forcelist=(429, 500, 502, 503, 504),
            respect_retry_after_header=True,
            retry_after_max=30,
            raise_on_status=False,
        )
        self.session = requests.Session()
        self.session.mount("http://", WatchedAdapter(max_retries=retry))
        self.session.mount("https://", WatchedAdapter(max_retries=retry))
        self.hook_session = requests.Session()
        self.hook_session.mount("http://", WatchedAdapter(max_retries=0))
        self.hook_session.mount("https://", WatchedAdapter(max_retries=0))
        self.session.headers.update(
            {"Accept": ACCEPT, "Authorization": f"hth.company_key='{company_key}',account_key='{account_key}'"}
        )

    @classmethod
    def from_environment(cls) -> "BuildApi":
        missing = [name for name in ("HTH_API_URL", "HTH_COMPANY_KEY", "HTH_BOT_ACCOUNT_KEY") if not os.environ.get(name)]
        if missing:
            raise ReportError(f"{' and '.join(missing)} must be set (HTH_BOT_ACCOUNT_KEY is a bot account's key)")
        return cls(
            base_url=os.environ["HTH_API_URL"],
            company_key=os.environ["HTH_COMPANY_KEY"],
            account_key=os.environ["HTH_BOT_ACCOUNT_KEY"],
            hook_url=os.environ.get("PULSEBOARD_HOOK_URL", ""),
            hook_secret=os.environ.get("PULSEBOARD_HOOK_SECRET", ""),
            call_deadline=_seconds(os.environ.get("PULSEBOARD_CALL_DEADLINE_SECONDS", ""), CALL_DEADLINE_SECONDS),
        )

    def create(self, *, project: str, repository: str, name: str, commits: list[str], resources: list[str]) -> dict:
        """POST /events: an unfinished build event (progress 0), which only PUT moves on."""
        body: dict[str, Any] = {"target": "build", "operation": "completed", "project": project, "repository": repository}
        body |= {"commits": commits, "resources": resources, "progress": 0} | ({"name": name} if name else {})
        created = self._call("POST", "/events", "start the build", json=body)
        if not isinstance(created.get("id"), str) or not created["id"]:
            raise ReportError("could not start the build: Helix TeamHub's answer has no event id")
        return created

    def update(self, event_id: str, *, progress: int, operation: str = "") -> dict:
        """PUT /events/:id: only progress and operation of an unfinished build event may change."""
        body: dict[str, Any] = {"progress": progress} | ({"operation": operation} if operation else {})
        return self._call("PUT", f"/events/{quote(event_id, safe='')}", f"update build {event_id}", json=body)

    def recent_durations(self, *, project: str, repository: str, name: str) -> list[float]:
        """Seconds from creation to the last update of this build's recent successful runs, newest first."""
        page = self._call("GET", "/events", "read recent builds", params={"project": project, "target": "build", "limit": 100})
        durations = []
        for event in page.get("results", []) if isinstance(page, dict) else []:
            if _is_same_finished_build(event, repository=repository, name=name):
                seconds = _seconds_between(event.get("created_at"), event.get("updated_at"))
                if seconds:
                    durations.append(seconds)
        return durations[:RECENT_RUNS]

    def _call(self, method: str, path: str, doing: str, **kwargs) -> Any:
        where = masked_url(self.base_url)
        with deadline(self.call_deadline) as call:
            try:
                response = self.session.request(method, self.base_url + path, timeout=TIMEOUT, stream=True, **kwargs)
                read_body(response, limit=MAX_ANSWER_BYTES)
                if call.expired:  # the watchdog cut it short: what did arrive is not the whole answer
                    raise DeadlinePassed(call.seconds)
            except AnswerTooLarge as exc:
                raise ReportError(f"could not {doing}: Helix TeamHub at {where} sent too much ({exc})") from None
            except (DeadlinePassed, requests.RequestException) as exc:
                reason = f"no answer within {call.seconds:g} s" if call.expired else _reason(exc)
                raise ReportError(f"could not {doing}: Helix TeamHub at {where} is unreachable ({reason})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise ReportError(f"could not {doing}: Helix TeamHub answered {response.status_code}: {_message(body, response)}")
        if not isinstance(body, dict):
            raise ReportError(f"could not {doing}: Helix TeamHub sent no JSON object ({response.status_code})")
        if method != "GET":
            self._forward(body)
        return body

    def _forward(self, event: dict) -> None:
        """Hand the event to Pulseboard's receiver as a Webhook would; a failure there is only a warning."""
        if not (self.hook_url and self.hook_secret):
            return
        where = masked_url(self.hook_url)
        with deadline(HOOK_DEADLINE_SECONDS) as call:
            try:
                # Never followed: the secret would go along to wherever the redirect points.
                response = self.hook_session.post(
                    self.hook_url,
                    json=[event],
                    headers={"X-Pulseboard-Secret": self.hook_secret},
                    timeout=(2, 5),
                    allow_redirects=False,
                    stream=True,
                )
                read_body(response, limit=64 * 1024)
                if call.expired:
                    raise DeadlinePassed(call.seconds)
            except (AnswerTooLarge, DeadlinePassed, requests.RequestException) as exc:
                reason = f"no answer within {call.seconds:g} s" if call.expired else _reason(exc)
                warn(f"Pulseboard at {where} is unreachable ({reason}); walls will see the build at their next refresh")
                return
        if response.is_redirect:
            warn(
                f"Pulseboard at {where} answered {response.status_code}, a redirect, which is not followed so that the "
                "secret goes nowhere else: set PULSEBOARD_HOOK_URL to the receiver's own address"
            )
        elif response.status_code >= 300:
            warn(f"Pulseboard refused the build ({response.status_code}: {response.text.strip()[:200]})")


def estimate_seconds(durations: list[float]) -> float:
    """How long this build usually takes: the median of its recent runs, so one slow run does not skew it."""
    return statistics.median(durations) if durations else DEFAULT_ESTIMATE_SECONDS


def progress_at(elapsed: float, estimate: float) -> int:
    """Linear to 90 at the estimate, then ever more slowly towards 99: only the command's end makes it 100."""
    if elapsed <= estimate:
        share = ESTIMATE_SHARE * elapsed / estimate
    else:
        share = ESTIMATE_SHARE + (99 - ESTIMATE_SHARE) * (1 - math.exp(-(elapsed - estimate) / estimate))
    return max(0, min(99, int(share)))


def run(api: BuildApi | None, options: argparse.Namespace) -> int:
    """Report the command as a build while it runs; its output passes straight through, its exit code is ours."""
    event_id, estimate = None, options.estimate
    if api is not None:
        try:
            if estimate is None:
                estimate = estimate_seconds(
                    api.recent_durations(project=options.project, repository=options.repository, name=options.name)
                )
            event_id = api.create(**_build_fields(options))["id"]
        except ReportError as exc:
            warn(f"{exc}; running the command without reporting the build")
        except Exception as exc:  # noqa: BLE001 -- whatever goes wrong in reporting, the CI job's command runs
            warn(f"could not start the build ({exc.__class__.__name__}: {exc}); running the command without reporting it")
    try:
        command = subprocess.Popen(options.command)  # noqa: S603 -- the CI job's own command, by design
    except OSError as exc:
        warn(f"cannot run {options.command[0]}: {exc.strerror}")
        if event_id:
            _finish_quietly(api, event_id, passed=False)
        return 127
    forward = lambda signum, frame: command.send_signal(signum)  # noqa: E731 -- the CI runner's stop reaches the command
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    done = threading.Event()
    if event_id:
        mover = threading.Thread(
            target=_move_progress, args=(api, event_id, estimate or DEFAULT_ESTIMATE_SECONDS, options.every, done)
        )
        mover.start()
    code = command.wait()
    done.set()
    if event_id:
        mover.join()
        _finish_quietly(api, event_id, passed=code == 0)
    return code if code >= 0 else 128 - code


def _move_progress(api: BuildApi, event_id: str, estimate: float, every: float, done: threading.Event) -> None:
    started, shown, warned = time.monotonic(), 0, False
    while not done.wait(every):
        progress = progress_at(time.monotonic() - started, estimate)
        if progress <= shown:
            continue
        try:
            api.update(event_id, progress=progress)
            shown = progress
        except ReportError as exc:
            if not warned:
                warn(f"{exc}; the command carries on")
                warned = True


def _finish_quietly(api: BuildApi, event_id: str, *, passed: bool) -> None:
    try:
        api.update(event_id, progress=100, operation="completed" if passed else "failed")
    except ReportError as exc:
        warn(str(exc))
    except Exception as exc:  # noqa: BLE001 -- the job's exit code is the command's, whatever reporting does
        warn(f"could not finish build {event_id} ({exc.__class__.__name__}: {exc})")


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    if options.subcommand == "run":
        if options.command[:1] == ["--"]:
            options.command = options.command[1:]
        if not options.command:
            _parser().error("run needs a command after --")
        try:
            api = BuildApi.from_environment()
        except ReportError as exc:
            warn(f"{exc}; running the command without reporting the build")
            api = None
        return run(api, options)
    try:
        api = BuildApi.from_environment()
        if options.subcommand == "start":
            print(api.create(**_build_fields(options))["id"])
        elif options.subcommand == "progress":
            api.update(options.id, progress=options.progress)
        else:
            api.update(options.id, progress=100, operation="completed" if options.passed else "failed")
    except ReportError as exc:
        warn(str(exc))
        return 1
    return 0


def warn(message: str) -> None:
    """One line on stderr, which CI shows in its log: any control character from upstream's words is shown
    escaped (\\x1b), never acted on, so an answer cannot colour, rewrite or hide lines of the log."""
    print(f"{PROG}: {CONTROL.sub(_escaped, message)}", file=sys.stderr, flush=True)


def _escaped(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Report a CI build to Helix TeamHub so Pulseboard's walls show it live."
    )
    commands = parser.add_subparsers(dest="subcommand", required=True)
    start = commands.add_parser("start", help="create an unfinished build event and print its id")
    running = commands.add_parser("run", help="report COMMAND as a build while it runs, and exit with its code")
    for sub in (start, running):
        sub.add_argument("--project", required=True, help="the Helix TeamHub project's id")
        sub.add_argument("--repository", required=True)
        sub.add_argument("--name", default="", help="the build's name, e.g. Development or Nightly")
        sub.add_argument("--commit", action="append", default=[], dest="commits", help="a commit id (repeatable)")
        sub.add_argument("--resource", action="append", default=[], dest="resources", help="the build's URL (repeatable)")
    running.add_argument("--estimate", type=float, help="seconds the build takes (default: from its recent runs)")
    running.add_argument("--every", type=float, default=PROGRESS_EVERY_SECONDS, help="seconds between progress updates")
    running.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    progress = commands.add_parser("progress", help="move an unfinished build to N percent")
    progress.add_argument("id")
    progress.add_argument("progress", type=_percent, metavar="N")
    finish = commands.add_parser("finish", help="finish a build as passed or failed")
    finish.add_argument("id")
    outcome = finish.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--passed", action="store_true")
    outcome.add_argument("--failed", action="store_true")
    return parser


def _build_fields(options: argparse.Namespace) -> dict[str, Any]:
    return {
        "project": options.project,
        "repository": options.repository,
        "name": options.name,
        "commits": options.commits,
        "resources": options.resources,
    }


def _seconds(text: str, default: float) -> float:
    try:
        seconds = float(text)
    except ValueError:
        return default
    return seconds if 0 < seconds < float("inf") else default


def _percent(text: str) -> int:
    if not (text.isdigit() and 0 <= int(text) <= 100):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole percentage from 0 to 100")
    return int(text)


def _is_same_finished_build(event: Any, *, repository: str, name: str) -> bool:
    if not isinstance(event, dict) or event.get("operation") != "completed" or event.get("progress", 100) != 100:
        return False
    objects = event.get("objects") if isinstance(event.get("objects"), dict) else {}
    linked = objects.get("repository", event.get("repository"))
    linked = linked.get("id") if isinstance(linked, dict) else linked
    return linked == repository and (not name or objects.get("name", event.get("name")) == name)


def _seconds_between(start: Any, end: Any) -> float | None:
    try:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def _message(body: Any, response: requests.Response) -> str:
    if not isinstance(body, dict):
        return response.reason or "no details"
    message = str(body.get("message") or body.get("error") or response.reason or "no details")
    errors = body.get("errors")
    if isinstance(errors, dict) and errors:
        message += " (" + "; ".join(f"{field} {', '.join(map(str, problems))}" for field, problems in errors.items()) + ")"
    return " ".join(message.split())


def _reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or reset"
    return exc.__class__.__name__


if __name__ == "__main__":
    sys.exit(main())
