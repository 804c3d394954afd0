"""DVC stage `ingest`: a thin entry point over `modops.cli.ingest` (see dvc.yaml for its arguments)."""

import typer

from modops.cli import ingest

if __name__ == "__main__":
    typer.run(ingest)
