"""The labeling scenario (issue 7, part 6), shared by tests/labeling/test_scenario.py (small) and
bench/labeling_scenario.py (the whole digits example).

Simulated labelers work through the REST API of a real `mlcrew serve` on 127.0.0.1, each with a
token made by the people CLI (`mlcrew user add`, `mlcrew token create`) and its own error rate:
with that probability it answers a wrong class (drawn uniformly from the others), gold items
included, since gold is unannounced. On top, a planted share of items carries a wrong label on
purpose: every labeler who gets such an item answers the same wrong class, so the consensus is
wrong there, as when an item's source misleads everyone; those are what label-error detection
must find.

From the labels stored in the project's database the scenario reports: Krippendorff's alpha
and Fleiss' kappa among the labelers, each labeler's Cohen's kappa and accuracy against the
truth, the majority consensus against the truth, each labeler's gold accuracy next to their
real error rate, and the precision and recall of likely-label-error detection (cleanlab's
`find_label_issues` on out-of-fold probabilities of a logistic regression on the pixels) on
the planted items. The figures are computed here with the libraries mlcrew's quality module
uses (`krippendorff`, statsmodels, scikit-learn, cleanlab), so they check the stored labels
against the truth independently of mlcrew's own quality report.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits-labeling"
CLASSES = tuple(str(i) for i in range(10))
ADMIN_PASSWORD = "a long password for the scenario"


@dataclass(frozen=True)
class SimLabeler:
    name: str
    error: float  # probability of answering a wrong class


@dataclass(frozen=True)
class Config:
    labelers: tuple[SimLabeler, ...]
    items: int | None = None  # the first N items of the example (None: all 1,797)
    overlap: int = 3
    planted: float = 0.05  # share of (non-gold) items with a planted wrong label
    seed: int = 0


@dataclass
class Outcome:
    """What the scenario measured; `to_json` is what the bench writes."""

    config: Config
    labels: int
    items_labelled: int
    seconds: float
    alpha: float
    fleiss_kappa: float
    consensus_accuracy: float
    consensus_kappa: float
    per_labeler: list[dict[str, Any]] = field(default_factory=list)
    planted: int = 0
    flagged: int = 0
    true_flags: int = 0
    precision: float = 0.0  # of the flags, the share that are planted items
    recall: float = 0.0  # of the planted items, the share flagged
    wrong_consensus: int = 0  # items whose consensus differs from the truth (planted or not)
    planted_wrong: int = 0  # planted items whose consensus is wrong
    flags_wrong: int = 0  # flagged items whose consensus is indeed wrong
    precision_wrong: float = 0.0  # of the flags, the share whose consensus is indeed wrong
    requests: int = 0
    mlcrew: dict[str, Any] = field(default_factory=dict)  # mlcrew's own quality report

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["config"] = {
            "labelers": [{"name": x.name, "error": x.error} for x in self.config.labelers],
            "items": self.config.items,
            "overlap": self.config.overlap,
            "planted": self.config.planted,
            "seed": self.config.seed,
        }
        return out


def read_csv(path: Path) -> dict[str, str]:
    with path.open() as f:
        return {r["item"]: r["label"] for r in csv.DictReader(f)}


def cli(env: dict[str, str], *args: str, stdin: str = "") -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "mlcrew.cli.main", *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"mlcrew {' '.join(args[:3])} failed: {proc.stderr.strip()[-800:]}")
    return proc.stdout


def make_project(root: Path, config: Config) -> None:
    """The digits example, cut to its first `items` rows, with the scenario's overlap."""
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlcrew", "__pycache__"))
    spec = root / "mlcrew.yaml"
    text = spec.read_text().replace("overlap: 2", f"overlap: {config.overlap}")
    spec.write_text(text)
    if config.items is not None:
        keep = config.items + 1  # with the header
        for name in ("digits.csv", "truth.csv"):
            lines = (root / "data" / name).read_text().splitlines()[:keep]
            (root / "data" / name).write_text("\n".join(lines) + "\n")
        items = set(read_csv(root / "data" / "truth.csv"))
        gold = (root / "data" / "gold.csv").read_text().splitlines()
        kept = [gold[0]] + [line for line in gold[1:] if line.split(",")[0] in items]
        (root / "data" / "gold.csv").write_text("\n".join(kept) + "\n")


class Server:
    """`mlcrew serve` for the project, on a free loopback port; stopped by its own pid."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        from mlcrew.serving.server import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlcrew.cli.main", "serve", "-p", str(root),
             "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise RuntimeError(f"mlcrew serve exited: {err[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("mlcrew serve did not answer /healthz in 120 s") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def run_scenario(workdir: Path, config: Config, db_url: str | None = None) -> Outcome:
    root = workdir / "digits"
    make_project(root, config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCREW_")}
    env["MLCREW_DB_URL"] = db_url or f"sqlite:///{workdir / 'meta.db'}"
    env["NO_COLOR"] = "1"
    p = ("-p", str(root))
    cli(env, "label", "import", *p)
    cli(env, "user", "add", "ada", "--role", "admin", "--password-stdin", *p,
        stdin=ADMIN_PASSWORD + "\n")  # fmt: skip
    tokens: dict[str, str] = {}
    for who in config.labelers:
        cli(env, "user", "add", who.name, "--role", "labeler", "--external", *p)
        tokens[who.name] = cli(env, "token", "create", who.name, *p).strip()

    truth = read_csv(root / "data" / "truth.csv")
    gold = read_csv(root / "data" / "gold.csv")
    rng = random.Random(config.seed)
    ordinary = sorted(set(truth) - set(gold))
    planted_items = rng.sample(ordinary, round(config.planted * len(ordinary)))
    planted = {item: rng.choice([c for c in CLASSES if c != truth[item]]) for item in planted_items}

    server = Server(root, env)
    started = time.perf_counter()
    requests = 0
    try:
        clients = {
            who.name: httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {tokens[who.name]}"},
                timeout=60,
            )
            for who in config.labelers
        }
        rngs = {who.name: random.Random(f"{config.seed}:{who.name}") for who in config.labelers}
        active = list(config.labelers)
        # Round robin, one request at a time: the same config gives the same labels.
        while active:
            for who in list(active):
                client = clients[who.name]
                got = client.get("/v1/labeling/next")
                requests += 1
                if got.status_code != 200:
                    raise RuntimeError(f"GET next for {who.name}: {got.status_code} {got.text}")
                task = got.json()["task"]
                if task is None:
                    active.remove(who)
                    continue
                item = task["item"]
                answer = planted.get(item, truth[item])
                draw = rngs[who.name]
                if draw.random() < who.error:
                    answer = draw.choice([c for c in CLASSES if c != answer])
                posted = client.post(f"/v1/labeling/tasks/{task['id']}/labels",
                                     json={"label": answer})  # fmt: skip
                requests += 1
                if posted.status_code != 201:
                    raise RuntimeError(f"POST label: {posted.status_code} {posted.text}")
        for client in clients.values():
            client.close()
    finally:
        server.stop()
    seconds = time.perf_counter() - started
    stored = stored_labels(root, env["MLCREW_DB_URL"])
    out = measure(config, root, stored, truth, gold, planted, seconds, requests)
    out.mlcrew = mlcrew_quality(root, env["MLCREW_DB_URL"], truth, planted)
    return out


def mlcrew_quality(
    root: Path, db_url: str, truth: dict[str, str], planted: dict[str, str]
) -> dict[str, Any]:
    """What mlcrew's own quality report (`mlcrew label quality`, labeling/project_quality.py)
    says about the same labels: agreement, gold accuracy, and its likely label errors scored
    against the planted items and against the consensus being wrong."""
    from mlcrew.labeling.project_quality import project_quality
    from mlcrew.project import Project

    proj = Project.open(root, db_url=db_url)
    try:
        report = project_quality(proj.store, spec=proj.spec, project=proj.root)
    finally:
        proj.close()
    flagged = {issue.item: issue.label for issue in report.label_issues.issues}
    wrong = {item for item, lab in flagged.items() if lab != truth[item]}
    hits = set(flagged) & set(planted)
    # cleanlab's consensus weighs the model with the labelers: where it already took the true
    # class over a planted wrong majority, the error is caught without a flag.
    final = {c.item: str(c.label) for c in report.consensus.items}
    mended = {item for item in planted if final.get(item) == truth[item]}
    return {
        "consensus_accuracy": (
            sum(final[i] == truth[i] for i in final if i in truth) / len(final) if final else 0.0
        ),
        "planted_mended": len(mended),
        "planted_caught": len(mended | hits),
        "recall_caught": len(mended | hits) / len(planted) if planted else 0.0,
        "alpha": report.agreement.alpha.value,
        "fleiss_kappa": report.agreement.fleiss.value,
        "gold_accuracy": {g.labeler: g.accuracy for g in report.gold},
        "checked": report.label_issues.checked,
        "reason": report.label_issues.reason,
        "flagged": len(flagged),
        "true_flags": len(hits),
        "precision": len(hits) / len(flagged) if flagged else 0.0,
        "recall": len(hits) / len(planted) if planted else 0.0,
        "flags_wrong": len(wrong),
        "precision_wrong": len(wrong) / len(flagged) if flagged else 0.0,
    }


def stored_labels(root: Path, db_url: str) -> list[tuple[str, str, str, bool]]:
    """(item, labeler, label, gold) of every submitted label, as the database holds them."""
    from sqlalchemy import select

    from mlcrew.labeling.tables import LabelAssignment, LabelTask
    from mlcrew.project import Project

    proj = Project.open(root, db_url=db_url)
    try:
        with proj.store.session() as s:
            rows = s.execute(
                select(LabelTask.item, LabelAssignment.labeler, LabelAssignment.label,
                       LabelAssignment.gold)
                .join(LabelTask, LabelTask.id == LabelAssignment.task_id)
                .where(LabelAssignment.state == "submitted")
            ).all()  # fmt: skip
    finally:
        proj.close()
    return [(str(i), str(w), str(lab), bool(g)) for i, w, lab, g in rows]


def measure(
    config: Config,
    root: Path,
    stored: list[tuple[str, str, str, bool]],
    truth: dict[str, str],
    gold: dict[str, str],
    planted: dict[str, str],
    seconds: float,
    requests: int,
) -> Outcome:
    import krippendorff
    import numpy as np
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    names = [who.name for who in config.labelers]
    ordinary = [(i, w, lab) for i, w, lab, g in stored if not g]
    items = sorted({i for i, _, _ in ordinary})
    col = {item: j for j, item in enumerate(items)}
    # Krippendorff: labelers x items, NaN where a labeler did not label the item.
    matrix = np.full((len(names), len(items)), np.nan)
    by_item: dict[str, list[str]] = {}
    for item, who, lab in ordinary:
        matrix[names.index(who), col[item]] = CLASSES.index(lab)
        by_item.setdefault(item, []).append(lab)
    alpha = float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))
    full = [labs for labs in by_item.values() if len(labs) == config.overlap]
    table, _ = aggregate_raters(np.array([[CLASSES.index(x) for x in labs] for labs in full]))
    fleiss = float(fleiss_kappa(table, method="fleiss"))
    consensus = {
        item: min(Counter(labs).most_common(), key=lambda kv: (-kv[1], CLASSES.index(kv[0])))[0]
        for item, labs in by_item.items()
    }
    cons_items = sorted(consensus)
    cons_true = [truth[i] for i in cons_items]
    cons_pred = [consensus[i] for i in cons_items]
    per: list[dict[str, Any]] = []
    for who in config.labelers:
        mine = [(i, lab) for i, w, lab in ordinary if w == who.name]
        # The labeler's real error rate: wrong against what they were shown to mean (the
        # planted label on planted items, the truth elsewhere), i.e. their own mistakes.
        meant = [planted.get(i, truth[i]) for i, _ in mine]
        errors = sum(lab != m for (_, lab), m in zip(mine, meant, strict=True))
        golds = [(i, lab) for i, w, lab, g in stored if g and w == who.name]
        gold_right = sum(lab == gold[i] for i, lab in golds)
        per.append(
            {
                "labeler": who.name,
                "set_error": who.error,
                "labels": len(mine),
                "real_error": errors / len(mine) if mine else None,
                "accuracy_vs_truth": (
                    sum(lab == truth[i] for i, lab in mine) / len(mine) if mine else None
                ),
                "kappa_vs_truth": (
                    float(cohen_kappa_score([truth[i] for i, _ in mine], [x for _, x in mine]))
                    if mine
                    else None
                ),
                "gold_items": len(golds),
                "gold_accuracy": gold_right / len(golds) if golds else None,
            }
        )
    flagged = label_issues(root, consensus)
    true_flags = len(flagged & set(planted))
    wrong = {i for i in consensus if consensus[i] != truth[i]}
    return Outcome(
        config=config,
        labels=len(stored),
        items_labelled=len(items),
        seconds=seconds,
        alpha=alpha,
        fleiss_kappa=fleiss,
        consensus_accuracy=sum(a == b for a, b in zip(cons_true, cons_pred, strict=True))
        / len(cons_items),
        consensus_kappa=float(cohen_kappa_score(cons_true, cons_pred)),
        per_labeler=per,
        planted=len(planted),
        flagged=len(flagged),
        true_flags=true_flags,
        precision=true_flags / len(flagged) if flagged else 0.0,
        recall=true_flags / len(planted) if planted else 0.0,
        wrong_consensus=len(wrong),
        planted_wrong=len(wrong & set(planted)),
        flags_wrong=len(flagged & wrong),
        precision_wrong=len(flagged & wrong) / len(flagged) if flagged else 0.0,
        requests=requests,
    )


def label_issues(root: Path, consensus: dict[str, str], seed: int = 0) -> set[str]:
    """Items whose consensus label cleanlab flags, from out-of-fold probabilities of a scaled
    logistic regression on the 64 pixel intensities (5 stratified folds, seeded)."""
    import numpy as np
    from cleanlab.filter import find_label_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with (root / "data" / "digits.csv").open() as f:
        rows = {r["item"]: r for r in csv.DictReader(f)}
    items = sorted(consensus)
    pixels = [c for c in next(iter(rows.values())) if c.startswith("px")]
    x = np.array([[float(rows[i][c]) for c in pixels] for i in items])
    y = np.array([CLASSES.index(consensus[i]) for i in items])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    probs = cross_val_predict(model, x, y, cv=folds, method="predict_proba")
    issues = find_label_issues(labels=y, pred_probs=probs, filter_by="prune_by_noise_rate")
    return {items[i] for i in np.flatnonzero(issues)}
