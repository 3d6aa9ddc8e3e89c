"""What the commands share: error reporting, input expansion, output naming, writing."""

from __future__ import annotations

import importlib.util
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


def bad_usage(message: str) -> click.ClickException:
    """A usage error as one line (exit status 2, as click gives its own, without the usage text)."""
    error = click.ClickException(message)
    error.exit_code = 2
    return error


def expand_inputs(inputs: Iterable[str], suffixes: set[str]) -> list[tuple[str, Path]]:
    """(file, its place under -o DIR): files as given go to the top; a directory expands to its
    files with the given suffixes, sorted, each keeping its path relative to the directory."""
    out: list[tuple[str, Path]] = []
    for item in inputs:
        p = Path(item)
        if item != STDIO and p.is_dir():
            out.extend((str(f), f.relative_to(p)) for f in sorted(p.rglob("*"))
                       if f.is_file() and f.suffix.lower() in suffixes)
        else:
            out.append((item, Path(p.name)))
    return out


def output_for(src: str, rel: Path, output: str | None, many: bool, default: Any) -> str:
    """Where one input's result goes: -o as a file, -o as a directory (several inputs; the input
    tree mirrored under it), or the default name."""
    if output is None:
        return STDIO if src == STDIO else str(default(Path(src)))
    if many:
        out_dir = Path(output)
        if not out_dir.is_dir():
            raise bad_usage(f"with several inputs, -o must be an existing directory: {output}")
        return str(out_dir / rel.parent / Path(default(rel)).name)
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


def progress(items: list, quiet: bool, desc: str):
    """A progress bar on stderr for several inputs (none for one input or with -q)."""
    if quiet or len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file", file=sys.stderr)


def run_each(ctx: click.Context, files: list[tuple[str, Path]], output: str | None, default: Callable[[Path], Path],
             work: Callable[[str, str], dict], summary: Callable[[dict], str], quiet: bool, as_json: bool,
             desc: str) -> None:
    """Run work(src, dst) per input; one input fails loudly, several go on and exit 1 if any failed.

    Per file: a summary line on stderr (unless -q or --json); at the end the results as JSON on stdout.
    """
    results, failed = [], 0
    targets = [output_for(src, rel, output, len(files) > 1, default) for src, rel in files]
    taken: dict[str, str] = {}
    for (src, _), dst in zip(files, targets):
        if dst != STDIO and taken.setdefault(dst, src) != src:
            raise bad_usage(f"{taken[dst]} and {src} would both be written to {dst}")
    bar = progress(list(zip([s for s, _ in files], targets)), quiet, desc)
    say = getattr(bar, "write", click.echo)  # lines above the progress bar, not through it
    for src, dst in bar:
        if dst == STDIO and as_json:
            raise click.UsageError("--json writes to stdout; give -o for the output")
        try:
            if len(files) > 1:  # a sub-folder of -o DIR, mirroring the input tree
                Path(dst).parent.mkdir(parents=True, exist_ok=True)
            result = work(src, dst)
        except Exception as exc:  # noqa: BLE001 - report, go on with the other inputs
            if len(files) == 1:
                raise
            failed += 1
            message = describe(exc)
            say(f"Error: {message if message.startswith(src + ':') else f'{src}: {message}'}", file=sys.stderr)
            continue
        results.append(result)
        if not quiet and not as_json:
            say(f"{src} -> {dst}: {summary(result)}", file=sys.stderr)
    if as_json:
        print_json(results)
    if failed:
        ctx.exit(1)


def run_on_cluster(ctx: click.Context, jobs: list, task: Any, args: tuple, workers: int | None,
                   scheduler: str | None, quiet: bool, as_json: bool, desc: str) -> None:
    """Run the jobs on a Dask cluster (gencompress.distributed): a progress bar over the whole job
    on stderr, failures one line each, a summary line; with --json one record per file on stdout."""
    from gencompress import distributed

    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=desc, unit="file", file=sys.stderr)

    def report(record: dict) -> None:
        if record["status"] == "failed":
            error = record["error"] if record["input"] in record["error"] else f"{record['input']}: {record['error']}"
            (bar.write if bar else click.echo)(f"Error: {error}", file=sys.stderr)
        if bar is not None:
            bar.update()

    with distributed.client(workers, scheduler) as dask_client:
        records = distributed.run(dask_client, task, jobs, *args, progress=report)
    if bar is not None:
        bar.close()
    counts = {s: sum(r["status"] == s for r in records) for s in ("encoded", "decoded", "skipped", "failed")}
    if not quiet:
        done = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        click.echo(f"{len(records)} files: {done or 'nothing to do'}", err=True)
    if as_json:
        print_json(records)
    if counts["failed"]:
        ctx.exit(1)


def plan_jobs(inputs: Iterable[str], output: str | None, suffixes: set[str], default: Callable[[Path], Path]) -> list:
    """The cluster's jobs: outputs under -o DIR (created if missing), mirroring the input tree."""
    from gencompress.distributed import plan

    if importlib.util.find_spec("distributed") is None:
        raise click.ClickException("--workers and --scheduler need Dask: pip install 'gencompress[distributed]'")
    if output is None or output == STDIO:
        raise click.UsageError("--workers and --scheduler write into a directory: give -o DIR")
    if STDIO in inputs:
        raise click.UsageError("--workers and --scheduler read files, not stdin")
    out_dir = Path(output)
    if out_dir.exists() and not out_dir.is_dir():
        raise click.UsageError(f"-o must be a directory: {output}")
    try:
        jobs = plan(list(inputs), out_dir, suffixes, default)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not jobs:
        raise click.UsageError("no input files found")
    out_dir.mkdir(parents=True, exist_ok=True)
    return jobs
