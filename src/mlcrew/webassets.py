"""Where the web assets live: templates, static files, and the plotly.js bundle the plotly package
ships (served locally and inlined in reports: never a CDN)."""

from __future__ import annotations

from pathlib import Path

from mlcrew.errors import NotFoundError

WEB = Path(__file__).parent / "web"
TEMPLATES_DIR = WEB / "templates"


def plotly_js() -> Path:
    """The plotly.js bundle of the installed plotly package."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise NotFoundError("the plotly package has no plotly.min.js; reinstall plotly")
    return path
