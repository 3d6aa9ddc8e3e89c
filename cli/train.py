"""gencompress train: rate-distortion training of a registered model, resumable, then export."""

from __future__ import annotations

from pathlib import Path

import click

from gencompress.models.registry import MODELS


@click.command()
@click.argument("data_dirs", nargs=-1, required=True)
@click.option("--model", type=click.Choice(sorted(n for n, s in MODELS.items() if s.trainable)), required=True)
@click.option("--out", "out_dir", required=True, help="Folder for checkpoint.safetensors / .json (and eval.jsonl).")
@click.option("--quality", type=click.IntRange(1, 8), help="Train this quality alone (default: all 8 at once).")
@click.option("--lambda", "lmbda", type=click.FloatRange(min=0, min_open=True),
              help="With --quality: this λ instead of the table's.")
@click.option("--variable-rate", is_flag=True, help="All 8 qualities in one run (the default; excludes --quality).")
@click.option("--metric", type=click.Choice(["mse", "ms-ssim"]), default="mse", show_default=True,
              help="Distortion of the rate-distortion loss.")
@click.option("--steps", type=click.IntRange(1), default=10000, show_default=True, help="Total steps of the schedule.")
@click.option("--minutes", type=float, help="Stop (with a checkpoint) after this much wall clock; run again to go on.")
@click.option("--batch", type=click.IntRange(1), default=8, show_default=True)
@click.option("--patch", type=click.IntRange(64), default=128, show_default=True, help="Crop size in pixels.")
@click.option("--lr", type=float, default=2e-4, show_default=True, help="Peak learning rate (cosine decay to lr/20).")
@click.option("--min-scale", type=click.FloatRange(0.05, 1.0), default=0.5, show_default=True,
              help="Random-scale crops: smallest resize factor (1 = plain crops).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 ...")
@click.option("--amp/--no-amp", default=None, help="bfloat16 autocast (default: on for CUDA only).")
@click.option("--threads", type=click.IntRange(1), help="CPU threads for torch.")
@click.option("--eval", "eval_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Held-out folder evaluated every --eval-every steps (repeatable).")
@click.option("--eval-every", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--resume", "resume", is_flag=True, help="Continue from the checkpoint in --out if there is one.")
@click.option("--init", "init", type=click.Path(exists=True, dir_okay=False),
              help="Start from these weights (a shipped .safetensors; another model's loads the shared tensors).")
@click.option("--export", "export_to", type=click.Path(dir_okay=False), help="Write shipped weights here at the end.")
@click.option("--gan", is_flag=True, help="Train the GAN decoder (sharpen) of the shipped MODEL, which stays frozen; "
                                          "--export writes it (beside the model's weights: MODEL.gan.safetensors).")
def train(data_dirs, model, out_dir, quality, lmbda, variable_rate, metric, steps, minutes, batch, patch, lr, min_scale,
          device, amp, threads, eval_dirs, eval_every, resume, init, export_to, gan):
    """Train MODEL on random crops of the images in DATA_DIRS (all 8 qualities at once unless --quality)."""
    if gan:
        return _train_gan(data_dirs, model, out_dir, steps, minutes, batch, patch, lr, min_scale, device, threads,
                          resume, export_to)
    if variable_rate and quality is not None:
        raise click.UsageError("--variable-rate and --quality exclude each other")
    if lmbda is not None and quality is None:
        raise click.UsageError("--lambda needs --quality (the slot it trains)")

    import torch

    from gencompress.train.export import export
    from gencompress.train.loop import TrainConfig, train as run_training

    if threads:
        torch.set_num_threads(threads)
    try:
        cfg = TrainConfig(model=model, data=list(data_dirs), out=out_dir, steps=steps, batch=batch, patch=patch, lr=lr,
                          min_scale=min_scale, device=device, init=init, quality=quality, lmbda=lmbda, metric=metric,
                          amp=amp, eval=list(eval_dirs), eval_every=eval_every)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    checkpoint = Path(out_dir) / "checkpoint.json"
    trainer = run_training(cfg, resume=Path(out_dir) if resume and checkpoint.is_file() else None,
                           max_seconds=None if minutes is None else minutes * 60)
    click.echo(f"{model}: step {trainer.step} of {steps}, checkpoint in {out_dir}", err=True)
    if export_to:
        export(Path(out_dir), Path(export_to))
        click.echo(f"exported {export_to}", err=True)


def _train_gan(data_dirs, model, out_dir, steps, minutes, batch, patch, lr, min_scale, device, threads, resume,
               export_to):
    import torch

    from gencompress.train.gan import GanConfig, train_gan

    if threads:
        torch.set_num_threads(threads)
    try:
        cfg = GanConfig(model=model, data=list(data_dirs), out=out_dir, steps=steps, batch=batch, patch=patch,
                        lr=lr, min_scale=min_scale, device=device)
        trainer = train_gan(cfg, resume=resume, max_seconds=None if minutes is None else minutes * 60)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"{model} GAN decoder: step {trainer.step} of {steps}, checkpoint in {out_dir}", err=True)
    if export_to:
        trainer.export(Path(export_to))
        click.echo(f"exported {export_to}", err=True)
