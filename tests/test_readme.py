"""The README as a new user follows it: its spec and its tour work as written."""

from __future__ import annotations

import re
from pathlib import Path

from mlcrew.project import EXAMPLES
from mlcrew.spec import load_spec, parse_spec

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_the_readme_spec_is_the_shipped_example() -> None:
    """A reader who copies the README's spec trains the same model as `mlcrew init` gives."""
    block = README.split("## The spec", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert (
        parse_spec(block, "README.md").model_dump()
        == load_spec(EXAMPLES / "bikeshare").model_dump()
    )


def test_the_tour_needs_only_what_it_names() -> None:
    """Commands in the shell blocks: mlcrew's own, and standard tools a shell has."""
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    commands = set()
    for block in blocks:
        for line in block.splitlines():
            if not line.strip() or line.startswith((" ", "-")):  # a continued command
                continue
            code = re.split(r"\s#", line, maxsplit=1)[0]
            for part in re.split(r"\||&&|;", code):
                if part.strip():
                    commands.add(part.split()[0])
    assert commands <= {"make", "source", "mlcrew", "cd", "sed", "curl"}, commands
