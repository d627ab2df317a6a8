"""The demo: a fresh bikeshare project from raw CSV to a served, monitored model, in one go."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcrew.errors import MlcrewError
from mlcrew.pipeline.runner import Progress, Runner
from mlcrew.project import Project, init_project
from mlcrew.serving.server import BackgroundServer
from mlcrew.spec import SPEC_FILE

NEW_DATA = "data/bikeshare-jul-dec.csv"


@dataclass
class DemoResult:
    project: Path
    run: dict[str, Any]
    request: dict[str, Any]
    response: dict[str, Any]
    actual: Any
    monitor: dict[str, Any]
    url: str
    server: BackgroundServer | None = field(default=None, repr=False)
    # True when the project lives in a temporary folder, which `close` removes.
    temporary: bool = False
    store: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Stop the server if it still runs, close the store, remove a temporary project."""
        if self.server is not None:
            self.server.stop()
        if self.store is not None:
            self.store.close()
        if self.temporary:
            shutil.rmtree(self.project, ignore_errors=True)


def run_demo(
    directory: Path | None = None,
    *,
    progress: Progress | None = None,
    keep_serving: bool = False,
    port: int = 0,
    on_step: Callable[[str], None] = lambda _: None,
) -> DemoResult:
    """Create, run, serve, predict over HTTP and monitor. With `keep_serving` the server is left
    running in `result.server` for the caller to wait on. Without `directory` the project lives
    in a temporary folder that `result.close()` removes (a failure removes it at once), so
    repeated demos leave nothing behind."""
    temporary = directory is None
    root = Path(tempfile.mkdtemp(prefix="mlcrew-demo-")) if directory is None else Path(directory)
    project: Project | None = None
    try:
        if (root / SPEC_FILE).exists():
            on_step(f"using the project in {root}")
        else:
            on_step(f"creating {'a temporary' if temporary else 'the'} project in {root}")
            init_project(root, "bikeshare")
        project = Project.open(root)
        result = _run_serve_monitor(project, progress, keep_serving, port, on_step)
    except BaseException:
        if project is not None:
            project.close()
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
        raise
    result.temporary = temporary
    result.store = project.store
    return result


def _run_serve_monitor(
    project: Project,
    progress: Progress | None,
    keep_serving: bool,
    port: int,
    on_step: Callable[[str], None],
) -> DemoResult:
    import httpx

    from mlcrew.api.app import create_app
    from mlcrew.monitoring.monitor import monitor
    from mlcrew.training.model import TabularModel

    root = project.root
    on_step("running the pipeline")
    result = Runner(project.root, project.store, project.spec, project.spec_text, progress).run()
    if not result.champion:
        raise MlcrewError("the demo model did not pass its gates; see 'mlcrew status'")
    server = BackgroundServer(create_app(project.root, project.spec, project.store), port=port)
    server.start()
    try:
        on_step(f"serving on {server.url}")
        # A real July row the model has never seen, sent as a client would send it.
        import csv

        with open(root / NEW_DATA, newline="") as f:
            row = next(r for r in csv.DictReader(f) if r["hr"] == "17")
        model = TabularModel.from_json(
            project.store.artifacts.read_bytes(_champion_digest(project))
        )
        payload = {f["name"]: _typed(row[f["name"]], f["type"]) for f in model.schema_}
        response = httpx.post(
            f"{server.url}/v1/models/{project.spec.name}/predict",
            json={"rows": [payload]},
            timeout=30,
        )
        response.raise_for_status()
        on_step(f"monitoring {NEW_DATA}")
        report = monitor(project.store, project.spec, root / NEW_DATA)
    except BaseException:
        server.stop()
        raise
    if not keep_serving:
        server.stop()
    return DemoResult(
        project=root,
        run=result.to_json(),
        request=payload,
        response=response.json(),
        actual=row[project.spec.target],
        monitor=report,
        url=server.url,
        server=server if keep_serving else None,
    )


def _champion_digest(project: Project) -> str:
    from mlcrew.registry.versions import get_version

    return get_version(project.store, project.spec.name).model_digest


def _typed(value: str, kind: str) -> Any:
    if kind == "category":
        # A category over an integer column (weekday) is sent as the integer a client has.
        from mlcrew.overview import category_value

        return category_value(value)
    if kind == "integer":
        return int(value)
    if kind == "boolean":
        return value.lower() in ("1", "true")
    return float(value)
