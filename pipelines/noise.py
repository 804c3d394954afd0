"""DVC stage `noise`: a thin entry point over `modops.cli.noise` (see dvc.yaml for its arguments)."""

import typer

from modops.cli import noise

if __name__ == "__main__":
    typer.run(noise)
