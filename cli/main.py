"""Entry point of the `gencompress` console script."""

from __future__ import annotations

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


for command in (encode, decode, info, models, bench, train):
    main.add_command(command)

if __name__ == "__main__":
    main()
