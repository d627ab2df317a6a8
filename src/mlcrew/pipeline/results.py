"""What a run did, as plain data: no database here, so the cached no-op replay (noop.py) can
build the same document without importing the store."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

StageState = Literal["executed", "cached", "failed"]
RunStatus = Literal["running", "ok", "failed", "interrupted"]


def run_lock_name(project: str) -> str:
    """The lock a pipeline run of `project` holds from start to finish."""
    return f"mlcrew:run:{project}"


@dataclass
class StageOutcome:
    name: str
    state: StageState
    outputs: dict[str, str]
    seconds: float
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class Promotion:
    """What the run's promotion step did with the newly registered version."""

    alias: str
    version: int
    promoted: bool
    reasons: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "version": self.version,
            "promoted": self.promoted,
            "reasons": self.reasons,
        }


@dataclass
class RunResult:
    run_id: str
    stages: list[StageOutcome]
    verdict: dict[str, Any] | None
    champion: dict[str, Any] | None
    status: str = "ok"
    error: str | None = None
    previous_champion: dict[str, Any] | None = None
    promotion: Promotion | None = None
    policy: Literal["auto", "manual"] = "auto"  # the spec's registry.promotion

    @property
    def registration(self) -> dict[str, Any] | None:
        """What the register stage did: {name, version, new, ...}, if it ran."""
        return next((s.record for s in self.stages if s.name == "register"), None)

    @property
    def training(self) -> dict[str, Any] | None:
        """What the train stage chose: the task (and why), the model and its validation score."""
        record = next((s.record for s in self.stages if s.name == "train"), None)
        if not record or "task" not in record:
            return None
        out: dict[str, Any] = {
            k: record[k] for k in ("task", "task_reason", "metric") if k in record
        }
        if record.get("ensemble"):
            trials = {t["trial"]: t for t in record.get("trials", [])}
            out["model"] = [
                {"trial": m["trial"], "weight": m["weight"], "kind": trials[m["trial"]]["kind"]}
                for m in record["ensemble"]
                if m["trial"] in trials
            ]
            out["trials"] = len(trials)
            out["valid_score"] = record.get("valid_score")
            out["validation"] = record.get("validation")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "stages": [
                {"name": s.name, "state": s.state, "outputs": s.outputs, "seconds": s.seconds}
                for s in self.stages
            ],
            "verdict": self.verdict,
            "champion": self.champion,
            "previous_champion": self.previous_champion,
            "promotion": self.promotion.to_json() if self.promotion else None,
            "warnings": [
                w for s in self.stages if s.name == "check" for w in s.record.get("warnings", [])
            ],
            "training": self.training,
            **({"error": self.error} if self.error else {}),
        }

    def champion_story(self) -> str:
        """One line on what happened to the champion, for people reading the run."""
        verdict, reg = self.verdict, self.registration or {}
        champion, before = self.champion, self.previous_champion

        def label(c: dict[str, Any] | None) -> str:
            return f"{c['name']} v{c['version']}" if c else "none"

        version = reg.get("version")
        if verdict and not verdict["passed"]:
            if champion and champion["version"] == version:
                return (
                    f"champion {label(champion)} fails the current gates; it stays champion "
                    "until a promotion replaces it (or 'mlcrew rollback')"
                )
            return (
                f"registered {reg.get('name')} v{version}, not promoted: a gate failed "
                f"(champion stays {label(champion)})"
            )
        if self.promotion and not self.promotion.promoted:
            return (
                f"registered {reg.get('name')} v{version}, not promoted: "
                + "; ".join(self.promotion.reasons)
                + f" (champion stays {label(champion)})"
            )
        if champion != before:
            return f"champion: {label(champion)} (was {label(before)})"
        if version is not None and (champion is None or champion["version"] != version):
            register = next((s for s in self.stages if s.name == "register"), None)
            if register is not None and register.state == "cached":
                why = "a known version: a run never moves an alias for one"
            elif self.policy == "manual":
                why = "registry.promotion is manual"
            else:
                why = "it passed before, so it is not offered again"
            return (
                f"{reg.get('name')} v{version} ({why}); champion stays {label(champion)}; "
                f"promote it with 'mlcrew promote {reg.get('name')} {version} --reason TEXT'"
            )
        return f"champion: {label(champion)} (unchanged)"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
