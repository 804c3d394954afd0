"""DVC stage `split`: a thin entry point over `modops.cli.split` (see dvc.yaml for its arguments)."""

import typer

from modops.cli import split

if __name__ == "__main__":
    typer.run(split)
