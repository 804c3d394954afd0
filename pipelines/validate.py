"""DVC stage `validate`: a thin entry point over `modops.cli.validate` (see dvc.yaml for its arguments)."""

import typer

from modops.cli import validate

if __name__ == "__main__":
    typer.run(validate)
