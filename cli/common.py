"""What the commands share: error reporting, input expansion, output naming, writing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

import click

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm", ".gif"}
STDIO = "-"


class Group(click.Group):
    """A click group that turns expected failures into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            raise click.Abort() from None
        except Exception as exc:  # noqa: BLE001 - the CLI's contract is one line, never a traceback
            raise click.ClickException(describe(exc)) from None


def describe(exc: BaseException) -> str:
    """One line for an error: the message, prefixed by its kind where the message alone is unclear."""
    from gencompress import FormatError, ImageError

    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, (FormatError, ImageError, FileExistsError, ValueError)):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def expand_inputs(inputs: Iterable[str], suffixes: set[str]) -> list[str]:
    """Files as given; directories expand to their files with the given suffixes, sorted."""
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if item != STDIO and p.is_dir():
            out.extend(str(f) for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in suffixes)
        else:
            out.append(item)
    return out


def output_for(src: str, output: str | None, many: bool, default: Any) -> str:
    """Where one input's result goes: -o as a file, -o as a directory (several inputs), or the default name."""
    if output is None:
        return STDIO if src == STDIO else str(default(Path(src)))
    if many:
        out_dir = Path(output)
        if not out_dir.is_dir():
            raise click.UsageError(f"with several inputs, -o must be an existing directory: {output}")
        return str(out_dir / Path(default(Path(src))).name)
    return output


def read_input(src: str) -> bytes:
    return sys.stdin.buffer.read() if src == STDIO else Path(src).read_bytes()


def write_output(dst: str, data: bytes, force: bool) -> None:
    from gencompress.atomic import write_bytes_atomic

    if dst == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_bytes_atomic(Path(dst), data, overwrite=force)


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2))


def progress(items: list[str], quiet: bool, desc: str):
    """A progress bar on stderr for several inputs (none for one input or with -q)."""
    if quiet or len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file", file=sys.stderr)


def run_each(ctx: click.Context, files: list[str], output: str | None, default: Callable[[Path], Path],
             work: Callable[[str, str], dict], summary: Callable[[dict], str], quiet: bool, as_json: bool,
             desc: str) -> None:
    """Run work(src, dst) per input; one input fails loudly, several go on and exit 1 if any failed.

    Per file: a summary line on stderr (unless -q or --json); at the end the results as JSON on stdout.
    """
    results, failed = [], 0
    for src in progress(files, quiet, desc):
        dst = output_for(src, output, len(files) > 1, default)
        if dst == STDIO and as_json:
            raise click.UsageError("--json writes to stdout; give -o for the output")
        try:
            result = work(src, dst)
        except Exception as exc:  # noqa: BLE001 - report, go on with the other inputs
            if len(files) == 1:
                raise
            failed += 1
            click.echo(f"Error: {src}: {describe(exc)}", err=True)
            continue
        results.append(result)
        if not quiet and not as_json:
            click.echo(f"{src} -> {dst}: {summary(result)}", err=True)
    if as_json:
        print_json(results)
    if failed:
        ctx.exit(1)
