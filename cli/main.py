"""Entry point of the `gencompress` console script."""

from __future__ import annotations

import warnings

import click

from .bench import bench
from .common import Group
from .decode import decode
from .encode import encode
from .info import info, models
from .train import train


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gencompress")
def main() -> None:
    """Learned image compression: encode images to .gcz and back."""
    warnings.showwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings at the shell are one line on stderr, like errors: no source file or code line."""
    click.echo(f"Warning: {str(message).splitlines()[0]}", err=True)


for command in (encode, decode, info, models, bench, train):
    main.add_command(command)

if __name__ == "__main__":
    main()
