"""DVC stage `evaluate`: a thin entry point over `modops.cli.evaluate` (see dvc.yaml for its arguments)."""

import typer

from modops.cli import evaluate

if __name__ == "__main__":
    typer.run(evaluate)
