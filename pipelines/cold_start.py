"""DVC stage `cold_start`: a thin entry point over `modops.cli.cold_start` (see dvc.yaml for its arguments)."""

import typer

from modops.cli import cold_start

if __name__ == "__main__":
    typer.run(cold_start)
