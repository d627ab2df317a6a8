"""The monitoring loop on a served model: windows over the prediction log, late labels, alert
rules with their webhook and gauge, and gated retraining with automatic or manual approval."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from mlcrew.api.app import create_app
from mlcrew.errors import DataError
from mlcrew.monitoring.alerts import deliver, list_alerts
from mlcrew.monitoring.labels import add_labels
from mlcrew.monitoring.loop import run_round
from mlcrew.monitoring.monitor import monitor, recorded_spec
from mlcrew.monitoring.retrain import retrain as retrain_now
from mlcrew.monitoring.windows import cut
from mlcrew.people.audit import events
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project
from mlcrew.registry.promotion import history, promote
from mlcrew.registry.versions import alias_holder, get_version
from mlcrew.serving.server import BackgroundServer
from mlcrew.spec import Webhook, Window
from mlcrew.store.models import Project as ProjectRow
from mlcrew.training.model import TabularModel

NAME = "bike-demand"


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers the statuses it is given, in turn."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.received.append(json.loads(body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 400 else b"not now")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def months(root: Path) -> dict[str, dict[str, list[dict[str, str]]]]:
    with open(root / "data" / "bikeshare-jul-dec.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out: dict[str, dict[str, list[dict[str, str]]]] = {}
    for row in rows:
        out.setdefault(row["mnth"], {}).setdefault(row["day"], []).append(row)
    return out


def serve_month(
    url: str, schema: list[dict[str, Any]], days: dict[str, list[dict[str, str]]]
) -> None:
    """A day per request, its request id naming the day."""
    from mlcrew.demo import typed_value

    with httpx.Client(base_url=url, timeout=30) as client:
        for day, hours in days.items():
            rows = [
                {f["name"]: typed_value(h[f["name"]], f["type"]) for f in schema} for h in hours
            ]
            answer = client.post(
                f"/v1/models/{NAME}/predict",
                json={"rows": rows},
                headers={"x-request-id": f"day-{day}"},
            )
            answer.raise_for_status()


def label_file(path: Path, days: dict[str, list[dict[str, str]]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["request_id", "row", "bikers"])
        writer.writerows(
            (f"day-{d}", i, h["bikers"]) for d, hours in days.items() for i, h in enumerate(hours)
        )
    return path


@pytest.fixture()
def loop_project(
    example_dir: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Project, Receiver]]:
    approval = getattr(request, "param", "auto")
    with Receiver() as receiver:
        spec = example_dir / "mlcrew.yaml"
        text = spec.read_text().replace("approval: auto ", f"approval: {approval} ")
        text = text.replace(
            "  retrain:\n",
            f"  webhook: {{url: '{receiver.url}', retries: 2, backoff_seconds: 0.05}}\n"
            "  retrain:\n",
        )
        spec.write_text(text)
        proj = Project.open(example_dir, db_url=f"sqlite:///{example_dir / 'm.db'}")
        Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
        yield proj, receiver
        proj.close()


@pytest.mark.parametrize("loop_project", ["auto", "manual"], indirect=True)
def test_retrain_loop_end_to_end(loop_project: tuple[Project, Receiver], tmp_path: Path) -> None:
    proj, receiver = loop_project
    store, spec = proj.store, proj.spec
    app = create_app(proj.root, spec, store, access_log=False)
    data = months(proj.root)
    schema = TabularModel.from_json(
        store.artifacts.read_bytes(get_version(store, NAME).model_digest)
    ).schema_
    outcomes = []
    with BackgroundServer(app) as srv:
        for month in ("July", "Aug"):
            serve_month(srv.url, schema, data[month])
            assert app.service.log is not None
            app.service.log.flush()
            joined = add_labels(
                store,
                NAME,
                "bikers",
                label_file(tmp_path / f"{month}.csv", data[month]),
                row_column="row",
            )
            assert (
                joined["matched"] == sum(len(h) for h in data[month].values())
                and joined["unmatched"] == 0
            )
            outcomes.append(run_round(store, spec, proj.root, until=datetime.now(UTC)))
        metrics = httpx.get(srv.url + "/metrics").text
    july, august = outcomes
    # One window per round, judged against v1: summer temperatures drift from January-June.
    assert [len(o["windows"]) for o in outcomes] == [1, 1]
    assert (
        "temp" in july["windows"][0]["drifted"]
        and july["windows"][0]["performance"]["labelled_rows"] == 744
    )
    assert [a["rule"] for a in july["alerts"]] == ["drift"]
    assert july["retrain"]["status"] == "waiting"  # one labelled window: nothing to test on yet
    # The drift alert went out: stored, posted to the receiver, and on the gauge.
    assert receiver.received[0]["rule"] == "drift" and receiver.received[0]["model"] == NAME
    stored = list_alerts(store, NAME)
    assert stored[-1]["delivery"] == {
        "delivered": True,
        "attempts": 1,
        "status": 200,
        "error": None,
    }
    assert f'mlcrew_monitor_alert{{model="{NAME}",rule="drift"}} 1.0' in metrics
    # August: a candidate learns January-July, is scored with v1 on August (the fresh test).
    retrain = august["retrain"]
    fresh = retrain["fresh_test"]
    assert (
        retrain["version"] == 2
        and fresh["metric"] == "mae"
        and fresh["window"] == august["windows"][0]["id"]
    )
    assert fresh["candidate"] < fresh["champion"]
    moves = history(store, NAME)
    actions = [e.action for e in events(store, NAME)]
    assert "retrain" in actions
    if retrain["status"] == "promoted":
        assert alias_holder(store, NAME, "champion") == 2
        assert moves[0].reason.startswith("retrain (drift alert)") and moves[0].actor == "monitor"
        assert "retrain_promoted" in actions
        # Asked again with no new labelled window: the same data would make the same model.
        again = retrain_now(store, spec, proj.root, reason="asked again", actor="bob")
        assert again.status == "waiting" and "no labelled window arrived" in again.why
    else:
        # Manual approval: the candidate waits as challenger; a person promotes it.
        assert retrain["status"] == "awaiting_approval" and "mlcrew promote" in retrain["why"]
        assert (
            alias_holder(store, NAME, "champion") == 1
            and alias_holder(store, NAME, "challenger") == 2
        )
        # No second candidate while the first waits for a person.
        again = retrain_now(store, spec, proj.root, reason="asked again", actor="bob")
        assert again.status == "waiting" and "v2 still waits for approval" in again.why
        promote(store, NAME, 2, reason="checked the August numbers", actor="alice")
        assert alias_holder(store, NAME, "champion") == 2
        assert history(store, NAME)[0].actor == "alice"
    # The retrain ran the ordinary pipeline, with the champion's recorded spec learning from
    # the new rows; new files for v2 are still prepared by the original source's transforms.
    recorded = recorded_spec(store, get_version(store, NAME, 2))
    assert (
        recorded.modeled_dataset.from_ == "retrain_data"
        and recorded.monitoring.new_data is not None
    )
    assert (recorded.monitoring.new_data.source, recorded.monitoring.new_data.table) == (
        "rides",
        "hourly",
    )
    # ...and the project's own spec (what `mlcrew serve` and `mlcrew run` read) is untouched.
    with store.session() as s:
        project_spec = s.get(ProjectRow, store.project_name)
        assert (
            project_spec is not None
            and project_spec.spec_digest == get_version(store, NAME, 1).spec_digest
        )
    report = monitor(store, spec, proj.root / "data" / "bikeshare-jul-dec.csv")
    assert report["model"]["version"] == 2 or retrain["status"] != "promoted"
    assert report["data"]["prepared"] == "through the transforms"


def test_webhook_retries_with_backoff() -> None:
    hook = Webhook(url="http://127.0.0.1:9/", retries=2, backoff_seconds=0.01)
    with Receiver([503, 502, 200]) as flaky:
        outcome = deliver(hook.model_copy(update={"url": flaky.url}), {"rule": "drift"})
        assert outcome == {"delivered": True, "attempts": 3, "status": 200, "error": None}
        assert len(flaky.received) == 3
    with Receiver([400]) as refusing:
        outcome = deliver(hook.model_copy(update={"url": refusing.url}), {"rule": "drift"})
        assert not outcome["delivered"] and outcome["attempts"] == 1 and outcome["status"] == 400
    with Receiver() as gone:
        url = gone.url
    outcome = deliver(hook.model_copy(update={"url": url}), {"rule": "drift"})
    assert not outcome["delivered"] and outcome["attempts"] == 3 and "Connect" in outcome["error"]


def test_late_labels_by_id_and_by_key(example_dir: Path, tmp_path: Path) -> None:
    proj = Project.open(example_dir, db_url=f"sqlite:///{example_dir / 'm.db'}")
    Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    days = dict(list(months(proj.root)["July"].items())[:2])
    schema = TabularModel.from_json(
        proj.store.artifacts.read_bytes(get_version(proj.store, NAME).model_digest)
    ).schema_
    with BackgroundServer(app) as srv:
        serve_month(srv.url, schema, days)
    assert app.service.log is not None
    app.service.log.flush()
    path = label_file(tmp_path / "labels.csv", days)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, "day-999,0,12"]) + "\n")
    joined = add_labels(proj.store, NAME, "bikers", path, row_column="row")
    assert joined["matched"] == 48 and joined["unmatched"] == 1 and joined["unmatched_rows"] == [49]
    # A label that is no number for a regression model is refused before anything is stored.
    bad = tmp_path / "bad.csv"
    bad.write_text("request_id,row,bikers\nday-182,0,lots\n")
    with pytest.raises(DataError, match="holds 'lots', not a number"):
        add_labels(proj.store, NAME, "bikers", bad, row_column="row")
    typo = tmp_path / "typo.csv"
    typo.write_text("request_id,bikers\nday-1,3\n")
    with pytest.raises(DataError, match="none of its 1 labels answers a logged prediction"):
        add_labels(proj.store, NAME, "bikers", typo)
    lacking = tmp_path / "lacking.csv"
    lacking.write_text("id,count\nday-182,3\n")
    with pytest.raises(DataError, match="no column 'bikers', 'request_id'"):
        add_labels(proj.store, NAME, "bikers", lacking)
    # By key: the hour and the weather of the first day identify its rows.
    first = next(iter(days.values()))
    keyed = tmp_path / "keyed.csv"
    keyed.write_text(
        "hr,temp,hum,windspeed,bikers\n"
        + "".join(
            f"{h['hr']},{h['temp']},{h['hum']},{h['windspeed']},{h['bikers']}\n" for h in first
        )
    )
    joined = add_labels(proj.store, NAME, "bikers", keyed, key=["hr", "temp", "hum", "windspeed"])
    assert joined["matched"] == len(first) and joined["unmatched"] == 0
    round_ = run_round(proj.store, proj.spec, proj.root, until=datetime.now(UTC), retrain_ok=False)
    window = round_["windows"][0]
    assert window["rows"] == 48 and window["performance"]["labelled_rows"] == 48
    assert window["performance"]["metrics"]["mae"] > 0
    proj.close()


def _log(ats: list[int]) -> pa.Table:
    """A log of rows at these seconds (rows of one request share their second)."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return pa.table(
        {
            "at": pa.array(
                [base + timedelta(seconds=s) for s in ats], pa.timestamp("us", tz="UTC")
            ),
            "request_id": [f"r{s}" for s in ats],
            "row": [0] * len(ats),
        }
    )


def test_windows_by_rows_time_and_round() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    until = base + timedelta(hours=3)
    # By rows: at least 3 rows, closed where a request ends (second 2 has three rows).
    log = _log([0, 1, 2, 2, 2, 3, 4, 5, 6])
    cuts, pending = cut(log, Window(rows=3), 30, None, until)
    assert [c.rows.num_rows for c in cuts] == [5, 3] and pending == 1
    assert cuts[0].end == cuts[1].start == base + timedelta(seconds=3)
    # By time: hours aligned to UTC; the hour still open at `until` stays pending.
    log = _log([10, 20, 3700, 3800, 7300, 11000])
    cuts, pending = cut(log, Window(every="1h"), 30, None, base + timedelta(seconds=10800))
    assert [c.rows.num_rows for c in cuts] == [2, 2, 1] and pending == 1
    assert cuts[1].start == base + timedelta(hours=1) and cuts[1].end == base + timedelta(hours=2)
    # Each round: everything new, once there are enough rows to judge.
    assert cut(log, Window(), 30, None, until) == ([], 6)
    cuts, pending = cut(log, Window(), 5, base, until)
    assert len(cuts) == 1 and cuts[0].start == base and cuts[0].end == until and pending == 0
    with pytest.raises(ValueError, match="rows: N or by every"):
        Window(rows=3, every="1h")
    with pytest.raises(ValueError, match="duration like 30m"):
        Window(every="soon")


def test_metric_alert_fires_when_late_labels_arrive(example_dir: Path, tmp_path: Path) -> None:
    spec = example_dir / "mlcrew.yaml"
    spec.write_text(
        spec.read_text().replace(
            "{when: metric, metric: mae, max: 60}", "{when: metric, metric: mae, max: 20}"
        )
    )
    proj = Project.open(example_dir, db_url=f"sqlite:///{example_dir / 'm.db'}")
    Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    app = create_app(proj.root, proj.spec, proj.store, access_log=False)
    days = dict(list(months(proj.root)["July"].items())[:3])
    model = TabularModel.from_json(
        proj.store.artifacts.read_bytes(get_version(proj.store, NAME).model_digest)
    )
    with BackgroundServer(app) as srv:
        serve_month(srv.url, model.schema_, days)
    assert app.service.log is not None
    app.service.log.flush()
    first = run_round(proj.store, proj.spec, proj.root, until=datetime.now(UTC), retrain_ok=False)
    window = first["windows"][0]
    assert window["performance"] == {"labelled_rows": 0}
    assert "mae>20" not in [a["rule"] for a in first["alerts"]]
    add_labels(
        proj.store, NAME, "bikers", label_file(tmp_path / "late.csv", days), row_column="row"
    )
    second = run_round(proj.store, proj.spec, proj.root, retrain_ok=False)
    assert second["windows"] == [] and second["refreshed"] == [window["id"]]
    fired = [a for a in second["alerts"] if a["rule"] == "mae>20"]
    assert len(fired) == 1 and fired[0]["window_id"] == window["id"] and fired[0]["value"] > 20
    # Once per window: the next round says nothing new.
    third = run_round(proj.store, proj.spec, proj.root, retrain_ok=False)
    assert [a for a in third["alerts"] if a["rule"] == "mae>20"] == []
    # A segment written now with rows of the closed window (a writer that retried for long):
    # its rows are counted as late, not judged again.
    from mlcrew.serving.predlog import read_predictions, segments

    old = segments(proj.store, NAME)[0]
    stamp = datetime.now(UTC)
    late = f"{old.rsplit('/', 2)[0]}/{stamp:%Y-%m-%d}/{stamp:%Y%m%dT%H%M%S%fZ}-1-000001.parquet"
    proj.store.artifacts.write_file(late, proj.store.artifacts.read_files([old])[0])
    fourth = run_round(proj.store, proj.spec, proj.root, until=datetime.now(UTC), retrain_ok=False)
    assert fourth["windows"] == []
    assert fourth["late_rows"] == read_predictions(proj.store, NAME, [old]).num_rows > 0
    proj.close()
