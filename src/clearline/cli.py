"""The `clearline` command: thin wrappers that parse, call the library, and print."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from clearline.errors import ClearlineError


@click.group()
@click.version_option(package_name="clearline")
def main() -> None:
    """clearline: a machine-speed hotline and action gate between autonomous defences."""


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep both sides' log files in this directory.",
)
@click.option(
    "--delay-ms",
    type=click.FloatRange(0, 10_000),
    default=55.0,
    show_default=True,
    help="One-way delay of the in-memory link.",
)
def demo(out: Path | None, delay_ms: float) -> None:
    """Walk through the recon-swarm cascade with and without the hotline."""
    from clearline.demo import run_demo

    sys.exit(run_demo(out, delay_ms, click.echo))


@main.group()
def log() -> None:
    """Inspect a side's log file."""


@log.command("verify")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def log_verify(path: Path, as_json: bool) -> None:
    """Recompute every hash, proof and signature; exit 1 naming the first bad entry."""
    from clearline.log.store import verify_log

    try:
        report = verify_log(path)
    except ClearlineError as exc:
        click.echo(f"FAIL {path}: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(report.__dict__, sort_keys=True))
        return
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(report.by_type.items()))
    click.echo(
        f"OK {path}: side {report.side}, {report.entries} entries ({kinds}), "
        f"{report.checkpoints} signed checkpoints (latest covers {report.last_checkpoint_size}), "
        f"root {report.root}"
    )


@log.command("export")
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def log_export(path: Path, out: Path) -> None:
    """Write each entry's exact COSE_Sign1 bytes to OUT/*.cose, plus keys.json."""
    from clearline.log.store import export_log

    try:
        count = export_log(path, out)
    except ClearlineError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"wrote {count} .cose files and keys.json to {out}")


@main.group()
def policy() -> None:
    """Gate policies."""


@policy.command("check")
@click.argument("path", type=click.Path(path_type=Path), required=False)
def policy_check(path: Path | None) -> None:
    """Validate a policy file (the default policy if none) and print its canonical hash."""
    from clearline.config import default_policy, load_policy

    try:
        loaded = load_policy(path) if path is not None else default_policy()
    except ClearlineError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"OK {path or 'default policy'}: {loaded.name}, hash {loaded.hash.hex()}")


@policy.command("show-default")
def policy_show_default() -> None:
    """Print the default policy file."""
    from clearline.config import default_policy_text

    click.echo(default_policy_text(), nl=False)
