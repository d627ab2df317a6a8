"""The `mlcrew` command: a cached no-op `run` is answered before the CLI is even imported."""

from __future__ import annotations

import sys


def main() -> None:
    from mlcrew.pipeline.noop import replay

    code = replay(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from mlcrew.cli.main import main as full

    full(try_replay=False)


if __name__ == "__main__":
    main()
