"""`mlcrew doctor` on a project that carries each debt, and after each is paid off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlcrew.doctor import doctor
from mlcrew.pipeline.reproduce import reproduce
from mlcrew.pipeline.runner import Runner
from mlcrew.project import Project
from mlcrew.registry.versions import get_version
from mlcrew.serving.predict import PredictionService


def finding(result: dict[str, Any], item: str) -> dict[str, Any]:
    return next(f for s in result["sections"] for f in s["findings"] if f["id"] == item)


def test_each_debt_is_found_and_goes_when_paid(example_dir: Path) -> None:
    spec = example_dir / "mlcrew.yaml"
    text = spec.read_text()
    # Debts: a column that never varies, a gate nobody could fail, no alert rules.
    text = text.replace("weathersit, temp, atemp,", "weathersit, 1 as always_one, temp, atemp,")
    text = text.replace("{metric: mae, max: 60}", "{metric: mae, max: 1000}", 1)
    monitoring = text.index("  alerts:")
    text = text[:monitoring]
    spec.write_text(text)
    proj = Project.open(example_dir, db_url=f"sqlite:///{example_dir / 'm.db'}")
    run = Runner(proj.root, proj.store, proj.spec, proj.spec_text).run()
    # A caller without a token (the local owner): an undeclared consumer.
    service = PredictionService(proj.store, proj.spec.serving)
    row = {"hr": 17, "holiday": 0, "weekday": 3, "workingday": 1, "weathersit": "clear",
           "always_one": 1, "temp": 0.7, "atemp": 0.65, "hum": 0.5, "windspeed": 0.2}  # fmt: skip
    service.predict(proj.spec.name, [row])
    assert service.log is not None
    service.log.close()

    result = doctor(proj.store, proj.spec)
    assert set(result) == {"score", "sections"}
    assert [s["name"] for s in result["sections"]] == [
        "data", "model", "infrastructure", "monitoring", "technical debt"
    ]  # fmt: skip
    rubric = [s["score"] for s in result["sections"] if s["name"] != "technical debt"]
    assert result["score"] == min(rubric)
    unused = finding(result, "data-2")
    assert unused["status"] == "missing" and "features nobody uses" in unused["found"]
    assert "always_one" in unused["found"] and "features.exclude" in unused["fix"]
    checks = finding(result, "data-1")
    assert "data checks missing on used columns" in checks["found"] and "holiday" in checks["found"]
    assert "always_one" in checks["found"] and "bikers" not in checks["found"]
    gate = finding(result, "model-5")
    assert "thresholds fixed by hand and never revisited: mae <= 1000" in gate["found"]
    never = finding(result, "infra-1")
    assert never["status"] == "partial" and "models never reproduced" in never["found"]
    assert f"mlcrew reproduce {run.run_id}" in never["fix"]
    alerts = finding(result, "monitor-2")
    assert alerts["status"] == "missing" and "monitoring without alerts" in alerts["found"]
    consumers = finding(result, "debt-1")
    assert (
        consumers["status"] == "missing"
        and "1 recent predictions went to callers without" in (consumers["found"])
    )

    # Paid off: the run reproduced, alerts and a binding gate in the spec.
    assert reproduce(proj.store, run.run_id)["identical"]
    spec.write_text(
        text.replace("{metric: mae, max: 1000}", "{metric: mae, max: 60}")
        + "  alerts:\n    - {when: drift}\n    - {when: metric, metric: mae, max: 60}\n"
        + "  webhook: {url: 'http://127.0.0.1:9/hook'}\n"
    )
    proj = Project.open(example_dir, db_url=f"sqlite:///{example_dir / 'm.db'}")
    paid = doctor(proj.store, proj.spec)
    assert finding(paid, "infra-1")["status"] == "ok"
    assert finding(paid, "monitor-2")["status"] == "ok"
    gate = finding(paid, "model-5")
    assert gate["status"] == "ok", gate
    assert get_version(proj.store, proj.spec.name).version == 1

    # The CLI prints the same document.
    cli = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", "doctor", "--json", "-p", str(example_dir)],
        capture_output=True, text=True, check=False,
        env={"MLCREW_DB_URL": f"sqlite:///{example_dir / 'm.db'}",
             **{k: v for k, v in os.environ.items() if k != "MLCREW_DB_URL"}},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    printed = json.loads(cli.stdout)
    assert printed["score"] == paid["score"]
    assert [s["name"] for s in printed["sections"]] == [s["name"] for s in paid["sections"]]
    assert all({"name", "score", "findings"} <= set(s) for s in printed["sections"])
    proj.close()
