"""Drive the real processes through a fault schedule, let them quiesce, then check what the mirror promises.

The world: both simulators over loopback, the poller as a real process (`poll`, or `serve` with the
poller inside), occasional `sync --once` runs beside it, and, on PostgreSQL/Redis, TCP relays between
those processes and the servers (tests/db_relay.py). Admin edits go through the real admin views (a
logged-in Django test client in this process, which reaches the database directly, not through a relay).

After the schedule every fault is switched off and the poller gets a few passes; the invariants are
checked once with malformed records still upstream (one bad record must not freeze the rest of its
mirror), and again after they are corrected (a corrected record must be read again):
  mirror:  every well-formed event, incident, note and state timeline row upstream is mirrored once, with
           the same fields that matter; nothing deleted upstream stays (events may: the API cannot say an
           event went); a note with an undelivered admin edit is compared by the admin invariant instead.
  derived: every incident with a timeline has exactly one clock, and it agrees with upstream's rows
           sorted by `startsAt` (start, first resolution, open or not); no clock outlives its timeline;
           the weeks /insights/ merges equal a rebuild from the clocks (dashboard/live/incident_weeks.py).
  admin:   every admin edit is in OneUptime, or visibly held (conflict or failed) in the outbox, or
           was knowingly replaced (by an edit whose author had seen it).
  upstream edits: every edit made in OneUptime is still there, or was knowingly replaced, or its note
           is held as a conflict (OneUptime has no If-Match: a write racing ours can only be shown).
  derived: every pipeline equals a rebuild from the mirrored events (dashboard/live/pipelines.py),
           and so do its open weeks (dashboard/live/pipeline_weeks.py, what /insights/ sums).
  poller:  the poller process never exited by itself and still makes passes, and never deadlocked;
           `sync --once` exits 0.
  hooks:   while OneUptime hangs, every Helix TeamHub webhook delivery is read back and stored within
           HOOK_BOUND_SECONDS (checked during that step).
Each invariant is re-checked for up to SETTLE_SECONDS (90 s; 100 s after the repair) before it counts as broken.
"""

import json
import os
import random
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from django import forms
from django.contrib.auth.models import User
from django.db.models import Q
from django.test import Client, override_settings
from django.urls import reverse

from dashboard.live import incident_weeks, pipeline_weeks, pipelines
from dashboard.models import (
    Event,
    HookDelivery,
    Incident,
    IncidentClock,
    IncidentNote,
    IncidentStateChange,
    NoteWrite,
    SyncState,
)
from dashboard.poller import retention
from dashboard.upstreams.oneuptime import writeback
from dashboard.upstreams.oneuptime.sync import TOKEN_PREFIX
from dashboard.upstreams.storable import text as storable_text
from tests.db_relay import Relay
from tests.faults import schedule
from tests.processes import base_env, free_port, manage, start_manage, wait_for_port

POLL_INTERVAL = 1.0
HISTORY_EVENTS = 2500
SCAN_DELAY = 0.02  # seconds per upstream answer during the schedule, so that scans last long enough to be hit
# How long the mirror has to settle after the faults: a pass that follows a storm of 700 live builds
# re-derives their pipelines page by page, and took 64 s on this 2-core machine with another suite beside it.
SETTLE_SECONDS = 90
QUIET_PASSES_SECONDS = 3.0  # at least two full passes of each source at POLL_INTERVAL
KEPT_DAYS = 10  # retention prunes the older part of the simulators' history (about 17 days) while schedules run
HELD = (NoteWrite.State.CONFLICT, NoteWrite.State.FAILED)
HOOK_SECRET = "faults-hook-secret"  # both receivers are on, so the poller runs a hook drain per source
# One upstream call, retries included, ends by this (UPSTREAM_CALL_DEADLINE_SECONDS): a trickling answer
# holds a call this long. A Helix TeamHub delivery stuck behind one such note re-read waits past the bound.
CALL_DEADLINE_SECONDS = 20
HOOK_BOUND_SECONDS = 15


@dataclass
class Edit:
    """One change to a note's text: who made it, what it says, and the text its author saw (None for a create)."""

    by: str  # "admin" or "upstream"
    note_pk: int | None  # the mirror's row (admin edits)
    upstream_id: str | None
    text: str
    base: str | None
    step: int


@dataclass
class World:
    seed: int
    hth: object
    oneuptime: object
    database_url: str | None  # the real servers' URLs when the variant uses them
    redis_url: str | None
    log_dir: Path
    rng: random.Random = field(init=False)
    edits: list[Edit] = field(default_factory=list)
    deleted_events: set[str] = field(default_factory=set)
    deleted_notes: set[str] = field(default_factory=set)
    malformed_incidents: set[str] = field(default_factory=set)
    malformed_notes: set[str] = field(default_factory=set)  # left out of the first check, like malformed incidents
    racing_edits: list[Edit] = field(default_factory=list)  # land inside write-back's update, if it gets that far
    self_exits: list[str] = field(default_factory=list)
    seen_tokens: set[str] = field(default_factory=set)  # creates deleted in OneUptime after the sync saw them
    step_violations: list[str] = field(default_factory=list)
    step_no: int = 0
    poller: subprocess.Popen | None = None
    syncs: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self):
        self.rng = random.Random(f"world-{self.seed}")
        self.variant = schedule.variant(self.seed)
        self.db_relay = Relay(self.database_url) if self.database_url else None
        self.redis_relay = Relay(self.redis_url) if self.redis_url else None
        self.oneuptime.limit_max = self.variant["oneuptime_limit_max"]
        self.admin = Client()
        user = User.objects.create_superuser("faults-admin", "faults@example.com", "faults-password")
        self.admin.force_login(user)
        self.texts = 0

    # ---- processes -------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        overrides = {
            "HTH_API_URL": self.hth.url,
            "HTH_COMPANY_KEY": self.hth.company_key,
            "HTH_ACCOUNT_KEY": self.hth.account_key,
            "ONEUPTIME_API_URL": self.oneuptime.url,
            "ONEUPTIME_API_KEY": self.oneuptime.api_key,
            "POLL_INTERVAL_SECONDS": str(POLL_INTERVAL),
            "LIVE_REFRESH_SECONDS": "0.5",
            "UPSTREAM_CONNECT_TIMEOUT_SECONDS": "1",
            "UPSTREAM_READ_TIMEOUT_SECONDS": "2",
            "UPSTREAM_RETRIES": "2",
            "UPSTREAM_BACKOFF_SECONDS": "0.05",
            "UPSTREAM_RETRY_AFTER_MAX_SECONDS": "2",
            # The hourly re-reads that find events backdated below a pass's floor, and note edits stamped
            # while OneUptime's clock ran behind ours: due within a schedule here.
            "HTH_RESCAN_SECONDS": "10",
            "EVENTS_KEPT_DAYS": str(KEPT_DAYS),
            "ONEUPTIME_RESCAN_SECONDS": "10",
            "HTH_WEBHOOK_SECRET": HOOK_SECRET,
            "ONEUPTIME_WEBHOOK_SECRET": HOOK_SECRET,
            "UPSTREAM_CALL_DEADLINE_SECONDS": str(CALL_DEADLINE_SECONDS),
        }
        env = base_env(**overrides)
        if self.db_relay:
            env["DATABASE_URL"] = self.db_relay.url
        if self.redis_relay:
            # The relay's own `url` assumes a user part, which a Redis URL often does not have.
            parts = urlsplit(self.redis_url)
            credentials = parts.netloc.rpartition("@")[0]
            address = f"127.0.0.1:{self.redis_relay.listener.getsockname()[1]}"
            env["REDIS_URL"] = urlunsplit(parts._replace(netloc=f"{credentials}@{address}" if credentials else address))
        else:
            env.pop("REDIS_URL", None)
        return env

    def start_poller(self) -> None:
        log = open(self.log_dir / f"poller-{self.step_no}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 -- the process owns it
        if self.variant["poller"] == "serve":
            self.port = free_port()
            self.poller = start_manage("serve", "--port", str(self.port), env=self.env(), log=log)
        else:
            self.poller = start_manage("poll", env=self.env(), log=log)
        self.poller_log = Path(log.name)

    def _sigkill_poller(self) -> None:
        self.poller.send_signal(signal.SIGKILL)
        self.poller.wait()

    def check_poller(self) -> None:
        """A poller that exits without being killed is a finding; restart it so the schedule goes on."""
        if self.poller.poll() is not None:
            tail = self.poller_log.read_text(errors="replace").strip().splitlines()[-3:]
            self.self_exits.append(f"step {self.step_no}: exit code {self.poller.returncode}: {' | '.join(tail)}")
            self.start_poller()

    def stop(self) -> None:
        for process in [self.poller, *self.syncs]:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        for relay in (self.db_relay, self.redis_relay):
            if relay:
                relay.close()

    # ---- the schedule --------------------------------------------------------------------------

    def run(self, steps: list[dict]) -> None:
        self.hth.delay = self.oneuptime.delay = SCAN_DELAY
        self.start_poller()
        for self.step_no, step in enumerate(steps, start=1):
            getattr(self, step["kind"])(step)
            time.sleep(step["pause"])
            self.check_poller()

    def kill_poller(self, step: dict) -> None:
        time.sleep(step["after"])
        self.check_poller()
        self._sigkill_poller()
        self.start_poller()

    def sync_once(self, step: dict) -> None:
        process = start_manage("sync", "--once", env=self.env(), log=subprocess.DEVNULL)
        self.syncs.append(process)
        if step["kill_after"] is not None:
            time.sleep(step["kill_after"])
            process.send_signal(signal.SIGKILL)
            process.wait()

    def hth_fault(self, step: dict) -> None:
        self._upstream_fault(self.hth, step, arrive=lambda: self._hth_arrival())

    def oneuptime_fault(self, step: dict) -> None:
        self._upstream_fault(self.oneuptime, step, arrive=lambda: self._note_arrival())

    def _upstream_fault(self, sim, step: dict, arrive) -> None:
        fault, count = step["fault"], step["count"]
        if fault == "503":
            sim.fail_next(count, 503)
        elif fault == "429":
            sim.rate_limit_next(count, retry_after=1)
        elif fault == "bad_json":
            sim.corrupt_next(count)
        else:
            sim.delay = 2.5  # longer than the read timeout: a hang
        for _ in range(step["arrivals"]):
            arrive()
            time.sleep(0.05)
        if fault == "hang":
            time.sleep(count * 0.5)
            sim.delay = SCAN_DELAY

    def hth_arrivals(self, step: dict) -> None:
        for _ in range(step["count"]):
            self._hth_arrival()
            time.sleep(0.02)
        for _ in range(step["builds"]):
            self.hth.start_build()

    def hth_burst(self, step: dict) -> None:
        """More than a page of events at once, so that the next pass spans pages and can be cut mid-way."""
        for _ in range(step["count"]):
            self._hth_arrival()

    def _hth_arrival(self) -> None:
        self.hth.add_event(target="push", operation="created")

    def hth_edits(self, step: dict) -> None:
        builds = [item for item in self.hth.well_formed_events() if item.get("target") == "build"][:50]
        for item in self.rng.sample(builds, min(step["count"], len(builds))):
            progress = item.get("progress")
            if isinstance(progress, int) and progress < 100:
                self.hth.set_progress(item["id"], min(100, progress + self.rng.randint(5, 60)))
            else:
                self.hth.update_event(item["id"], title=f"edited {self.seed}-{self.step_no}")

    def hth_deletes(self, step: dict) -> None:
        events = self.hth.well_formed_events()
        for item in self.rng.sample(events, min(step["count"], len(events))):
            self.hth.delete_event(item["id"])
            self.deleted_events.add(item["id"])

    def hth_malformed(self, step: dict) -> None:
        self.hth.add_malformed_event(step["malformed"])

    def note_arrivals(self, step: dict) -> None:
        for _ in range(step["incidents"]):
            self.oneuptime.add_incident()
        for _ in range(step["notes"]):
            self._note_arrival()
            time.sleep(0.02)

    def _note_arrival(self) -> None:
        incidents = list(self.oneuptime.incidents)
        if incidents:
            self.oneuptime.add_note(self.rng.choice(incidents))

    def note_edits(self, step: dict) -> None:
        for note_id in self.rng.sample(list(self.oneuptime.notes), min(step["count"], len(self.oneuptime.notes))):
            self.upstream_edit(note_id)

    def upstream_edit(self, note_id: str) -> None:
        text = self.new_text("upstream")
        with self.oneuptime._lock:  # the text it replaces, read in the same breath as the edit
            base = self.oneuptime.notes[note_id]["note"]
            self.oneuptime.edit_note(note_id, note=text)
        self.edits.append(Edit("upstream", None, note_id, text, base, self.step_no))

    def note_deletes(self, step: dict) -> None:
        notes = list(self.oneuptime.notes)
        for note_id in self.rng.sample(notes, min(step["count"], len(notes))):
            self.oneuptime.delete_note(note_id)
            self.deleted_notes.add(note_id)
        if self.rng.random() < 0.3 and len(self.oneuptime.incidents) > 3:
            incident_id = self.rng.choice(list(self.oneuptime.incidents))
            self.deleted_notes.update(k for k, row in self.oneuptime.notes.items() if row["incidentId"] == incident_id)
            self.oneuptime.delete_incident(incident_id)

    def state_edits(self, step: dict) -> None:
        """People change incidents' states: forward, reopened, backdated, a `startsAt` edited, a row deleted."""
        for _ in range(step["count"]):
            incidents = list(self.oneuptime.incidents)
            if not incidents:
                return
            incident_id = self.rng.choice(incidents)
            rows = self.oneuptime.states_of(incident_id)
            action = self.rng.choice(("change", "backdate", "move", "delete"))
            try:
                if action == "change":
                    self.oneuptime.set_incident_state(incident_id, self.rng.choice(("Created", "Acknowledged", "Resolved")))
                elif action == "backdate":
                    when = rows[0]["startsAt"] + timedelta(seconds=self.rng.randint(1, 600))
                    self.oneuptime.add_state(incident_id, self.rng.choice(("Acknowledged", "Resolved")), starts_at=when)
                elif action == "move" and len(rows) > 1:
                    self.oneuptime.move_state(rows[-1]["_id"], rows[-1]["startsAt"] - timedelta(seconds=self.rng.randint(1, 300)))
                elif action == "delete" and len(rows) > 1:
                    self.oneuptime.delete_state(self.rng.choice(rows[1:])["_id"])
            except Exception as exc:  # OneUptime refuses some (same state as a neighbour, out of order): so does the simulator
                if exc.__class__.__name__ != "_ApiError":
                    raise

    def note_malformed(self, step: dict) -> None:
        incidents = list(self.oneuptime.incidents)
        if not incidents:
            return
        incident_id = self.rng.choice(incidents)
        if step["malformed"] == "incident_state":
            self.oneuptime.malform(incident_id, currentIncidentState="Investigating")
            self.malformed_incidents.add(incident_id)
        elif step["malformed"] == "incident_severity":
            self.oneuptime.malform(incident_id, incidentSeverity=["Major"])
            self.malformed_incidents.add(incident_id)
        elif step["malformed"] == "nul_in_note":
            self.oneuptime.add_note(incident_id, f"Mitigated\x00 at the edge ({self.seed}-{self.step_no})")
            return
        elif step["malformed"] == "surrogate_in_note":
            self.oneuptime.add_note(incident_id, f"Mitigated \ud800 at the edge ({self.seed}-{self.step_no})")
            return
        else:  # nested_note, oversized_note: a record the mirror skips until OneUptime serves it whole again
            note = self.oneuptime.add_note(incident_id, f"Malformed until repaired ({self.seed}-{self.step_no})")
            hostile = "x" * 1_000_001 if step["malformed"] == "oversized_note" else "leaf"
            for _ in range(100 if step["malformed"] == "nested_note" else 0):
                hostile = {"inner": hostile}
            self.oneuptime.malform(note["_id"], customFields=hostile)
            self.malformed_notes.add(note["_id"])
            return
        self.oneuptime.set_incident_state(incident_id, "Acknowledged")  # a change, so a pass reads it

    def skewed_clock(self, step: dict) -> None:
        sim = self.hth if step["simulator"] == "hth" else self.oneuptime
        skew = timedelta(seconds=step["seconds"])
        sim.clock = lambda: datetime.now(UTC) + skew
        deadline = time.monotonic() + step["for"]
        while time.monotonic() < deadline:
            if sim is self.hth:
                self._hth_arrival()
            else:
                notes = list(self.oneuptime.notes)
                if notes and self.rng.random() < 0.5:
                    self.upstream_edit(self.rng.choice(notes))
                else:
                    self._note_arrival()
            time.sleep(0.3)
        sim.clock = lambda: datetime.now(UTC)

    def database_outage(self, step: dict) -> None:
        self._outage(self.db_relay, step["for"])

    def redis_outage(self, step: dict) -> None:
        self._outage(self.redis_relay, step["for"])

    def hth_hooks_while_oneuptime_hangs(self, step: dict) -> None:
        """OneUptime hangs (its answers trickle in, so only each call's deadline ends it) while both sources'
        webhooks arrive: Helix TeamHub's deliveries must still be stored within HOOK_BOUND_SECONDS. One job
        draining both queues held them behind a note re-read for as long as that call lasted (issue 18)."""
        pending: dict[str, float] = {}  # pushed event id -> when its delivery was queued
        self.oneuptime.trickle = 1.0  # a byte a second: under the read timeout, so no read times out
        try:
            self._note_hook()  # its re-read starts now, and hangs
            time.sleep(0.5)
            end = time.monotonic() + step["for"]
            while time.monotonic() < end:
                item = self.hth.add_event(target="push", operation="created")
                if self._post_hook("/hooks/hth/", self.hth.webhook_body([item])):
                    pending[item["id"]] = time.monotonic()
                if self.rng.random() < 0.3:
                    self._note_hook()
                self._check_hth_hooks(pending)
                time.sleep(0.5)
        finally:
            self.oneuptime.trickle = 0.0  # answers begun meanwhile trickle on until their call's deadline
        while pending:
            self._check_hth_hooks(pending)
            time.sleep(0.2)

    def _check_hth_hooks(self, pending: dict[str, float]) -> None:
        """Forget the deliveries that are stored (out of the queue, the event mirrored); report the overdue ones."""
        for event_id, queued_at in list(pending.items()):
            waiting = HookDelivery.objects.filter(kind=HookDelivery.Kind.HTH_EVENTS, payload__id=event_id).exists()
            if not waiting and Event.objects.filter(upstream_id=event_id).exists():
                del pending[event_id]
            elif time.monotonic() - queued_at > HOOK_BOUND_SECONDS:
                del pending[event_id]
                self.step_violations.append(
                    f"hooks: step {self.step_no}, a Helix TeamHub delivery ({event_id}) was not stored within "
                    f"{HOOK_BOUND_SECONDS} s while OneUptime hung ({'queued' if waiting else 'not mirrored'})"
                )

    def _note_hook(self) -> None:
        """A note arrives in OneUptime and its workflow posts it to us."""
        incidents = list(self.oneuptime.incidents)
        if incidents:
            note = self.oneuptime.add_note(self.rng.choice(incidents))
            self._post_hook("/hooks/oneuptime/", json.dumps({"noteId": note["_id"]}).encode())

    def _post_hook(self, path: str, body: bytes) -> bool:
        """A webhook through the real receiver (in this process, as the admin's edits are); it must be queued."""
        receivers = {
            "HTH_API_URL": self.hth.url,
            "HTH_WEBHOOK_SECRET": HOOK_SECRET,
            "ONEUPTIME_API_URL": self.oneuptime.url,
            "ONEUPTIME_WEBHOOK_SECRET": HOOK_SECRET,
        }
        with override_settings(**receivers):
            response = self.admin.post(path, body, content_type="application/json", headers={"X-Pulseboard-Secret": HOOK_SECRET})
        if response.status_code != 202:
            self.step_violations.append(f"hooks: step {self.step_no}, {path} answered {response.status_code}, not 202")
        return response.status_code == 202

    def redis_partition(self, step: dict) -> None:
        """Redis answers nothing (a blackhole, not a refusal): pushes wait for their timeouts, the mirror must not."""
        self.redis_relay.blackhole()
        end = time.monotonic() + step["for"]
        while time.monotonic() < end:
            time.sleep(0.2)
            self.check_poller()
        self.redis_relay.up()

    def horizon_arrivals(self, step: dict) -> None:
        """Backdated arrivals around retention's horizon: a full pass must not store what lies below it,
        and must never bring back what retention pruned (its horizon and the pass's are one)."""
        horizon = datetime.now(UTC) - timedelta(days=KEPT_DAYS)
        for _ in range(step["count"]):
            when = horizon + timedelta(seconds=self.rng.uniform(-400, 60))
            self.hth.add_event(target="push", operation="created", timestamp=when.isoformat().replace("+00:00", "Z"))

    def live_build_storm(self, step: dict) -> None:
        """Hundreds of builds running at once: the live sweep and the refresh's upsert lock the same rows."""
        for _ in range(step["count"]):
            self.hth.start_build()

    def database_cut_mid_write(self, step: dict) -> None:
        """The connection drops while a page of events or notes is being stored, and the next few connects fail."""
        table = b'INSERT INTO "dashboard_event"' if step["table"] == "event" else b'INSERT INTO "dashboard_incidentnote"'
        self.db_relay.cut_when_sent(table, refuse=step["refuse"])
        arrive = self._hth_arrival if step["table"] == "event" else self._note_arrival
        for _ in range(step["arrivals"]):
            arrive()

    def _outage(self, relay: Relay, seconds: float) -> None:
        if not seconds:
            relay.flap(refuse=0)
            return
        if self.variant["poller"] == "serve":
            wait_for_port(self.port, self.poller)  # so that /healthz can be asked during the outage
        relay.down()
        end = time.monotonic() + seconds
        if relay is self.db_relay and self.variant["poller"] == "serve" and self.poller.poll() is None:
            self.check_health_while_the_database_is_down()
        while time.monotonic() < end:
            time.sleep(0.2)
            self.check_poller()
        relay.up()

    def check_health_while_the_database_is_down(self) -> None:
        """A load balancer asks /healthz: with the database gone it should hear a JSON 503, not an HTML 500."""
        try:
            response = requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=10)
        except requests.RequestException as exc:
            self.step_violations.append(f"healthz: step {self.step_no}, database down: no answer ({exc.__class__.__name__})")
            return
        kind = response.headers.get("Content-Type", "")
        if response.status_code != 503 or not kind.startswith("application/json"):
            self.step_violations.append(f"healthz: step {self.step_no}, database down: {response.status_code} {kind}")

    # ---- the admin, through its real views ---------------------------------------------------------

    def editable_note(self) -> IncidentNote | None:
        notes = list(
            IncidentNote.objects.filter(deleted=False, upstream_id__isnull=False).order_by("id").values_list("id", flat=True)
        )
        return IncidentNote.objects.get(id=self.rng.choice(notes)) if notes else None

    def load_form(self, url: str) -> dict:
        response = self.admin.get(url)
        if response.status_code != 200:
            return {}
        data = {}
        for bound in response.context["adminform"].form:
            value, widget = bound.value(), bound.field.widget
            if isinstance(widget, forms.MultiWidget):
                for index, part in enumerate(widget.decompress(value)):
                    data[f"{bound.html_name}_{index}"] = "" if part is None else str(part)
            elif isinstance(widget, forms.CheckboxInput):
                if value:
                    data[bound.html_name] = "on"
            else:
                data[bound.html_name] = "" if value is None else value
        return data

    def save_form(self, url: str, data: dict, text: str, note: IncidentNote | None) -> bool:
        response = self.admin.post(url, data | {"note": text})
        if response.status_code != 302:
            return False
        saved = note or IncidentNote.objects.get(note=text)
        self.edits.append(Edit("admin", saved.pk, saved.upstream_id, text, data.get("base_text") if note else None, self.step_no))
        return True

    def admin_edit(self, step: dict) -> Edit | None:
        note = self.editable_note()
        if note is None:
            return None
        url = reverse("admin:dashboard_incidentnote_change", args=[note.pk])
        data = self.load_form(url)
        if data and self.save_form(url, data, self.new_text("admin"), note):
            return self.edits[-1]
        return None

    def admin_concurrent_edits(self, step: dict) -> None:
        """Two admins open the same note, then both save: the second never saw the first's text."""
        note = self.editable_note()
        if note is None:
            return
        url = reverse("admin:dashboard_incidentnote_change", args=[note.pk])
        first, second = self.load_form(url), self.load_form(url)
        if first and second:
            self.save_form(url, first, self.new_text("admin"), note)
            self.save_form(url, second, self.new_text("admin"), note)

    def admin_create(self, step: dict) -> None:
        incidents = list(Incident.objects.values_list("pk", flat=True))
        if not incidents:
            return
        url = reverse("admin:dashboard_incidentnote_add")
        data = self.load_form(url)
        if data:
            self.save_form(url, data | {"incident": self.rng.choice(incidents)}, self.new_text("admin"), None)

    def admin_create_lost_answer(self, step: dict) -> None:
        """An admin's note reaches OneUptime and the poller dies before hearing so; the sync links it; then
        someone deletes it in OneUptime and types the same text in again by hand. Ours must not come back."""
        self.oneuptime.hold_after_write = 1.5  # under the read timeout: the kill lands while the poller waits
        try:
            before = len(self.edits)
            self.admin_create(step)
            if len(self.edits) == before:
                return
            note = IncidentNote.objects.get(pk=self.edits[-1].note_pk)
            token = TOKEN_PREFIX + str(note.writes.get(action=NoteWrite.Action.CREATE).token)
            if not _wait(
                lambda: any(row["postedFromSlackMessageId"] == token for row in list(self.oneuptime.notes.values())), 15
            ):
                return
            self.check_poller()
            self._sigkill_poller()
        finally:
            self.oneuptime.hold_after_write = 0.0
        self.start_poller()
        if not _wait(lambda: IncidentNote.objects.filter(pk=note.pk).exclude(upstream_id=None).exists(), 10):
            return
        upstream_id = IncidentNote.objects.get(pk=note.pk).upstream_id
        self.oneuptime.delete_note(upstream_id)
        self.deleted_notes.add(upstream_id)
        self.oneuptime.add_note(note.incident.upstream_id, note.note)
        self.seen_tokens.add(token)

    def edit_during_delivery(self, step: dict) -> None:
        """An admin edit, and a OneUptime edit of the same note that lands just after write-back reads it."""
        edit = self.admin_edit(step)
        if edit is not None:
            text = self.new_text("upstream")
            self.oneuptime.edit_before_next_update(edit.upstream_id, note=text)
            self.racing_edits.append(Edit("upstream", None, edit.upstream_id, text, None, self.step_no))

    def admin_takes_theirs(self, step: dict) -> None:
        """The admin resolves a conflict with "Use OneUptime's version", through the changelist action."""
        held = list(NoteWrite.objects.filter(state=NoteWrite.State.CONFLICT).values_list("note_id", flat=True))
        if held:
            url = reverse("admin:dashboard_incidentnote_changelist")
            self.admin.post(url, {"action": "use_upstream", "_selected_action": [self.rng.choice(held)]})

    def new_text(self, by: str) -> str:
        self.texts += 1
        return f"{by} edit {self.seed}-{self.step_no}-{self.texts}: next update in {self.rng.randint(5, 60)} minutes."

    # ---- quiesce and check -------------------------------------------------------------------------

    def quiesce(self) -> list[str]:
        """Faults off and a few passes; then malformed items corrected upstream and a few more passes.

        The first check skips what is still malformed upstream (one bad record must not freeze the rest
        of its mirror); the second covers everything (a corrected record must be read again).
        """
        for sim in (self.hth, self.oneuptime):
            sim.clear_faults()
            sim.delay = sim.trickle = 0.0
            sim.clock = lambda: datetime.now(UTC)
        for relay in (self.db_relay, self.redis_relay):
            if relay:
                relay.cut_on = None
                relay.up()
        for process in self.syncs:
            process.wait(timeout=120)
        self.check_poller()
        quiet_since = datetime.now(UTC)
        malformed = self.malformed_incidents & set(self.oneuptime.incidents)
        before = self.settle(quiet_since, malformed_incidents=malformed, timeout=SETTLE_SECONDS)
        self.hth.repair_malformed_events()
        for upstream_id in self.malformed_incidents | self.malformed_notes:
            self.oneuptime.unmalform(upstream_id)
        self.malformed_notes = set()
        after = self.settle(datetime.now(UTC), malformed_incidents=set(), timeout=SETTLE_SECONDS + 10)
        violations = [f"before repair: {found}" for found in before if found not in after] + after
        violations += self.step_violations + self.poller_violations(quiet_since)
        result = manage("sync", "--once", env=self.env())
        if result.returncode != 0:
            last_line = (result.stderr.strip().splitlines() or [""])[-1]
            violations.append(f"poller: `sync --once` after quiescence exits {result.returncode}: {last_line[:300]}")
        return violations

    def settle(self, since: datetime, *, malformed_incidents: set[str], timeout: float) -> list[str]:
        """Wait for two passes of each source and an empty queue of pending writes, then for the invariants, up to `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            time.sleep(1.0)
            self.check_poller()
            passes_done = SyncState.objects.filter(last_success_at__gt=since + timedelta(seconds=QUIET_PASSES_SECONDS))
            settled = passes_done.count() == 2 and not NoteWrite.objects.filter(state=NoteWrite.State.PENDING).exists()
            if settled or time.monotonic() > deadline:
                violations = self.violations(malformed_incidents)
                if not violations or time.monotonic() > deadline:
                    if not settled:
                        violations.append(f"poller: not settled after {timeout:g} s: {self.unsettled(since)}")
                    return violations

    def unsettled(self, since: datetime) -> str:
        states = {s.source: (s.last_success_at, s.last_error[:120]) for s in SyncState.objects.all()}
        pending = list(
            NoteWrite.objects.filter(state=NoteWrite.State.PENDING).values_list(
                "action", "attempts", "next_attempt_at", "last_error"
            )
        )
        return f"quiet since {since:%H:%M:%S}; last success and error per source {states}; pending writes {pending[:3]}"

    def poller_violations(self, quiet_since: datetime) -> list[str]:
        found = [f"poller: exited by itself at {exit_}" for exit_ in self.self_exits]
        stale = SyncState.objects.filter(Q(last_attempt_at__lt=quiet_since) | Q(last_attempt_at__isnull=True))
        found += [f"poller: no {state.source} pass attempted since quiescence began" for state in stale]
        for log in sorted(self.log_dir.glob("poller-*.log")):  # the live sweep and the upsert lock in one order
            if (deadlocks := log.read_text(errors="replace").count("deadlock detected")) > 0:
                found.append(f"poller: {deadlocks} deadlock(s) in {log.name}")
        return found

    def violations(self, malformed_incidents: set[str]) -> list[str]:
        posted_again = [
            row["_id"] for row in list(self.oneuptime.notes.values()) if row["postedFromSlackMessageId"] in self.seen_tokens
        ]
        return (
            [f"notes: a create deleted in OneUptime after the sync saw it was posted again: {posted_again[:3]}"]
            * bool(posted_again)
            + self.event_violations()
            + self.incident_violations(malformed_incidents)
            + self.note_violations(malformed_incidents)
            + self.state_violations()
            + self.edit_violations()
            + pipelines.differences()
            + self.pipeline_week_violations()
            + incident_weeks.differences()
        )

    def pipeline_week_violations(self) -> list[str]:
        """The poller closes weeks at its own retention horizon: compare the open weeks at the same one."""
        with override_settings(EVENTS_KEPT_DAYS=KEPT_DAYS):
            return pipeline_weeks.differences(now=datetime.now(UTC))

    def state_violations(self) -> list[str]:
        """The state timeline, and the clocks derived from it."""
        with self.oneuptime._lock:
            upstream = {key: dict(row) for key, row in self.oneuptime.state_timeline.items()}
            names = {row["_id"]: row for row in self.oneuptime._rows["IncidentState"].values()}
        mirror = {row.upstream_id: row for row in IncidentStateChange.objects.all()}
        found = []
        missing = sorted(set(upstream) - set(mirror))
        if missing:
            found.append(f"states: {len(missing)} of {len(upstream)} timeline rows missing, e.g. {missing[:3]}")
        extra = sorted(set(mirror) - set(upstream))
        if extra:
            found.append(f"states: {len(extra)} timeline rows deleted upstream but still mirrored, e.g. {extra[:3]}")
        stale = [
            key
            for key, row in upstream.items()
            if key in mirror and (mirror[key].state_id, mirror[key].starts_at) != (row["incidentStateId"], _ms(row["startsAt"]))
        ]
        if stale:
            found.append(f"states: {len(stale)} timeline rows mirrored with an old state or start, e.g. {stale[:3]}")
        by_incident: dict[str, list[dict]] = {}
        for row in upstream.values():
            by_incident.setdefault(row["incidentId"], []).append(row)
        clocks = {clock.incident_upstream_id: clock for clock in IncidentClock.objects.all()}
        orphans = sorted(set(clocks) - set(by_incident))
        if orphans:
            found.append(f"clocks: {len(orphans)} for incidents with no timeline upstream, e.g. {orphans[:3]}")
        wrong = []
        for incident_id, rows in by_incident.items():
            rows.sort(key=lambda row: (row["startsAt"], row["createdAt"], row["_id"]))
            clock = clocks.get(incident_id)
            resolved = next((row["startsAt"] for row in rows if names[row["incidentStateId"]]["isResolvedState"]), None)
            expected = (
                _ms(rows[0]["startsAt"]),
                resolved and _ms(resolved),
                not names[rows[-1]["incidentStateId"]]["isResolvedState"],
            )
            if clock is None or (clock.started_at, clock.resolved_at, clock.is_open) != expected:
                wrong.append(incident_id)
        if wrong:
            found.append(f"clocks: {len(wrong)} incidents whose durations disagree with upstream's timeline, e.g. {wrong[:3]}")
        return found

    def event_violations(self) -> list[str]:
        upstream = {item["id"]: item for item in self.hth.well_formed_events()}
        ids = list(Event.objects.values_list("upstream_id", flat=True))
        mirror = {row["upstream_id"]: row for row in Event.objects.values("upstream_id", "progress", "operation", "title")}
        found = []
        if len(ids) != len(set(ids)):
            found.append("events: an id is mirrored more than once")
        horizon = datetime.now(UTC) - timedelta(days=KEPT_DAYS)  # below it, retention may have pruned them
        missing = sorted(event_id for event_id in set(upstream) - set(mirror) if _when(upstream[event_id]) >= horizon)
        if missing:
            found.append(f"events: {len(missing)} of {len(upstream)} upstream events missing, e.g. {missing[:3]}")
        extra = sorted(set(mirror) - set(upstream) - self.deleted_events)
        if extra:
            found.append(f"events: {len(extra)} mirrored events that upstream never had, e.g. {extra[:3]}")
        stale = [
            event_id
            for event_id, item in upstream.items()
            if event_id in mirror
            and (mirror[event_id]["progress"], mirror[event_id]["operation"]) != (item.get("progress"), item.get("operation"))
        ]
        if stale:
            found.append(f"events: {len(stale)} mirrored with old progress or operation, e.g. {stale[:3]}")
        cutoff = horizon - retention.HORIZON_GRACE - timedelta(seconds=2 * POLL_INTERVAL)  # retention runs every pass
        back = list(retention.prunable(before=cutoff).values_list("upstream_id", flat=True)[:3])
        if back:
            found.append(f"events: pruned by retention, yet in the mirror (brought back by a pass?), e.g. {back}")
        return found

    def incident_violations(self, malformed: set[str]) -> list[str]:
        upstream = {key: dict(row) for key, row in self.oneuptime.incidents.items() if key not in malformed}
        mirror = {row.upstream_id: row for row in Incident.objects.exclude(upstream_id__in=malformed)}
        found = []
        horizon = datetime.now(UTC) - timedelta(days=KEPT_DAYS)  # below it, retention may have pruned them
        missing = sorted(event_id for event_id in set(upstream) - set(mirror) if _when(upstream[event_id]) >= horizon)
        if missing:
            found.append(f"incidents: {len(missing)} of {len(upstream)} missing, e.g. {missing[:3]}")
        extra = sorted(set(mirror) - set(upstream))
        if extra:
            found.append(f"incidents: {len(extra)} deleted upstream but still mirrored, e.g. {extra[:3]}")
        states = {row["_id"]: row["name"] for row in self.oneuptime._rows["IncidentState"].values()}
        wrong = [
            key for key, row in upstream.items() if key in mirror and mirror[key].state != states[row["currentIncidentStateId"]]
        ]
        if wrong:
            found.append(f"incidents: {len(wrong)} with an old state, e.g. {wrong[:3]}")
        return found

    def note_violations(self, malformed_incidents: set[str]) -> list[str]:
        """Notes of a malformed incident are left out until it is corrected: whether they can be shown without it is open."""
        upstream = {
            key: dict(row)
            for key, row in self.oneuptime.notes.items()
            if row["incidentId"] not in malformed_incidents and key not in self.malformed_notes
        }
        held = set(NoteWrite.objects.filter(state__in=writeback.UNDELIVERED).values_list("note_id", flat=True))
        notes = (
            IncidentNote.objects.filter(upstream_id__isnull=False)
            .exclude(incident__upstream_id__in=malformed_incidents)
            .exclude(upstream_id__in=self.malformed_notes)
        )
        mirror = {row.upstream_id: row for row in notes.select_related("incident")}
        found = []
        horizon = datetime.now(UTC) - timedelta(days=KEPT_DAYS)  # below it, retention may have pruned them
        missing = sorted(event_id for event_id in set(upstream) - set(mirror) if _when(upstream[event_id]) >= horizon)
        if missing:
            found.append(f"notes: {len(missing)} of {len(upstream)} missing, e.g. {missing[:3]}")
        extra = sorted(key for key, row in mirror.items() if key not in upstream and row.pk not in held)
        if extra:
            found.append(f"notes: {len(extra)} deleted upstream but still mirrored, e.g. {extra[:3]}")
        stale = [
            key
            for key, row in mirror.items()
            if key in upstream
            and row.pk not in held
            and (_plain(row.note), row.incident.upstream_id) != (_plain(upstream[key]["note"]), upstream[key]["incidentId"])
        ]
        if stale:
            key = stale[0]
            found.append(
                f"notes: {len(stale)} mirrored with other text than OneUptime's, e.g. {key}: "
                f"{mirror[key].note[:60]!r} here, {str(upstream[key]['note'])[:60]!r} upstream"
            )
        return found

    def edit_violations(self) -> list[str]:
        # A racing edit that never met an update (held as a conflict before it was sent) never happened.
        unapplied = self.oneuptime._interleaved
        edits = self.edits + [edit for edit in self.racing_edits if edit.upstream_id not in unapplied]
        found = []
        for edit in edits:
            if edit.by == "admin":
                problem = self._admin_edit_problem(edit, edits)
            else:
                problem = self._upstream_edit_problem(edit, edits)
            if problem:
                found.append(f"{edit.by} edit of step {edit.step} ({edit.text[:40]!r}): {problem}")
        return found

    def _admin_edit_problem(self, edit: Edit, edits: list[Edit]) -> str | None:
        note = IncidentNote.objects.filter(pk=edit.note_pk).first()
        upstream_id = note.upstream_id if note else edit.upstream_id
        current = self.oneuptime.notes.get(upstream_id) if upstream_id else None
        if current is not None and current["note"] == edit.text:
            return None
        if note is not None and NoteWrite.objects.filter(note=note, state__in=HELD, data__note=edit.text).exists():
            return None  # visibly held
        later = [other for other in edits if other.base == edit.text and other is not edit]
        if later or upstream_id in self.deleted_notes:
            return None  # knowingly replaced, or the note was deleted in OneUptime
        writes = list(NoteWrite.objects.filter(note_id=edit.note_pk).values_list("action", "state", "data__note"))
        return f"lost: not in OneUptime ({(current or {}).get('note', 'no such note')!r:.60}) and not held; writes {writes}"

    def _upstream_edit_problem(self, edit: Edit, edits: list[Edit]) -> str | None:
        current = self.oneuptime.notes.get(edit.upstream_id)
        if current is None or current["note"] == edit.text:
            return None
        if any(other.base == edit.text for other in edits if other is not edit):
            return None  # someone who had seen it replaced it
        held = NoteWrite.objects.filter(note__upstream_id=edit.upstream_id).filter(
            Q(state=NoteWrite.State.CONFLICT) | Q(state=NoteWrite.State.DISCARDED, upstream_copy__isnull=False)
        )
        if held.exists():
            return None  # replaced without a check OneUptime cannot offer, but shown to a person as a conflict
        return f"lost: OneUptime now says {current['note'][:60]!r}, written by someone who never saw this edit"


def _ms(moment: datetime) -> datetime:
    """OneUptime stores microseconds and serves milliseconds."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _when(item: dict) -> datetime:
    """When an upstream record was made: a Helix TeamHub event's `timestamp` (text), a OneUptime row's `createdAt`."""
    return datetime.fromisoformat(item["timestamp"]) if "timestamp" in item else item["createdAt"]


def _plain(text: object) -> str:
    """PostgreSQL cannot store NUL nor a lone surrogate; a mirror that drops or replaces them keeps the text."""
    return storable_text(str(text or "")).replace("\ufffd", "")


def log_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="pulseboard-faults-"))


def settings_from_env() -> tuple[list[int], int]:
    """FAULT_SEED=1234 replays one schedule; FAULT_SCHEDULES, FAULT_FIRST_SEED and FAULT_STEPS size a run."""
    steps = int(os.environ.get("FAULT_STEPS", "15"))
    if os.environ.get("FAULT_SEED"):
        return [int(os.environ["FAULT_SEED"])], steps
    first = int(os.environ.get("FAULT_FIRST_SEED", "1"))
    return list(range(first, first + int(os.environ.get("FAULT_SCHEDULES", "3")))), steps
