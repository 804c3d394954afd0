"""DVC stage `register`: a thin entry point over `modops.cli.register` (see dvc.yaml for its arguments)."""

import typer

from modops.cli import register

if __name__ == "__main__":
    typer.run(register)
