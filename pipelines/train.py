"""DVC stage `train`: a thin entry point over `modops.cli.train` (see dvc.yaml for its arguments)."""

import typer

from modops.cli import train

if __name__ == "__main__":
    typer.run(train)
