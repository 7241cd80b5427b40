"""The `clearline` command: thin wrappers that parse, call the library, and print."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from clearline.errors import ClearlineError

if TYPE_CHECKING:
    from clearline.log.evidence import TrustedKeys


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command: `message` as one line on stderr, and exit `code`."""
    click.echo(message, err=True)
    raise click.exceptions.Exit(code)


USER_ERRORS: tuple[type[Exception], ...] = (ClearlineError, OSError)
"""What a user can cause (a bad file, a path that cannot be written): never a traceback."""


@contextlib.contextmanager
def failing(
    code: int = 1, prefix: str = "error: ", errors: tuple[type[Exception], ...] = USER_ERRORS
) -> Iterator[None]:
    """Inside, any of `errors` ends the command: PREFIX and the error's message (clearline's
    errors name the file, line or entry) on stderr, and exit `code`."""
    try:
        yield
    except errors as exc:
        if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
            raise  # a closed pipe (`| head`): click exits quietly
        fail(f"{prefix}{_plain(exc)}", code)


def _plain(exc: Exception) -> str:
    """The error's message on one line; an OSError as `PATH: what went wrong`, not Python's
    `[Errno N] ...`."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        where = os.fsdecode(exc.filename)
        if exc.filename2 is not None:
            where += f" -> {os.fsdecode(exc.filename2)}"
        return f"{where}: {exc.strerror}"
    return " ".join(str(exc).split("\n"))


class _OneLine(click.ClickException):
    """An error click reports as one line on stderr, exactly as given (exit 1)."""

    def show(self, file: Any = None) -> None:
        click.echo(self.message, err=True)


class _UsageLine(_OneLine):
    """A usage error as one line (exit 2, as click's own)."""

    exit_code = 2


def _one_line(exc: click.ClickException) -> click.ClickException:
    """A usage error as one line: which command, what was wrong, where to read what it takes.
    (click's own is four lines: usage, a hint, a blank and the error.)"""
    if isinstance(exc, _OneLine | click.exceptions.NoArgsIsHelpError):
        return exc  # `clearline sim` alone asks for the help, which click prints whole
    what = " ".join(exc.format_message().split())
    if isinstance(exc, click.UsageError):
        if exc.ctx is None:
            return _UsageLine(f"error: {what}")
        where = exc.ctx.command_path
        return _UsageLine(f"error: {where}: {what} (see {where} --help)")
    return _OneLine(f"error: {what}")


_NODE_PACKAGES = (
    "cryptography fastapi starlette uvicorn uvloop httptools prometheus_client httpx takproto"
)
_SIM_PACKAGES = "pandas pyarrow matplotlib rich distributed dask SALib"
EXTRAS = {
    **dict.fromkeys(_NODE_PACKAGES.split(), "node"),
    **dict.fromkeys(_SIM_PACKAGES.split(), "sim"),
}
"""The packages that come with an extra (pyproject.toml), by the name they are imported as:
the core installs neither the node's nor the simulator's, and commands import them late."""


def _need(extra: str) -> None:
    """Fail now, saying what to install, if a package of `extra` is not installed."""
    for module, wanted in EXTRAS.items():
        if wanted == extra and importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)


class _Commands(click.Group):
    """The command tree: an error a user caused that a command lets out is `error: ...`
    on stderr and exit 1. Commands wrap a call in `failing` for another code or prefix.
    A usage error (an unknown option, a malformed or missing value) is one line too, exit 2.
    A command whose extra is not installed says which one to install."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with failing():
                return super().invoke(ctx)
        except click.ClickException as exc:
            # Subcommands' usage errors come through here: the whole tree is covered.
            raise _one_line(exc) from None
        except ModuleNotFoundError as exc:
            module = (exc.name or "").partition(".")[0]
            if module not in EXTRAS:
                raise
            extra = EXTRAS[module]
            fail(
                f"error: this command needs {module}, which comes with clearline's {extra} "
                f"extra: pip install 'clearline[{extra}]'"
            )


@click.group(cls=_Commands)
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
    help="One-way delay between the two nodes: a proxy on loopback adds it to the live link "
    "(with --virtual, the simulated link's delay).",
)
@click.option(
    "--episodes",
    type=click.IntRange(0, 1_000_000),
    default=400,
    show_default=True,
    help="Episodes per arm of the closing Monte Carlo (0 skips it).",
)
@click.option(
    "--virtual",
    is_flag=True,
    help="Run scene 1 in one process under the simulator's virtual clock instead of two "
    "live nodes.",
)
@click.option("--headless", is_flag=True, help="Do not open the console in a browser.")
@click.option(
    "--pause",
    type=click.FloatRange(0, 3600),
    default=None,
    help="Wait this many seconds after the nodes are up, before the scene, so the console is "
    "open when it starts [default: 3 where the demo opens a browser, else 0].",
)
@click.option(
    "--duration",
    type=click.FloatRange(0, 86_400),
    default=None,
    help="Keep the live nodes up this many seconds after the scene, for the console "
    "(heartbeats keep flowing; a countdown shows the time left) [default: 30 where the demo "
    "opens a browser, else 0: the nodes stop when the scene ends].",
)
@click.option(
    "--tak",
    is_flag=True,
    help="Run scene 1 with a TAK server in the loop: one FreeTAKServer for each side "
    "(installed on first use; needs CPython 3.11 and a writable /opt/fts); the swarm and the "
    "sighting go in as CoT and the answer comes out as CoT on the US server.",
)
@click.option(
    "--tak-venv",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --tak: the virtual environment FreeTAKServer is (or is to be) installed in "
    "[default: ~/.cache/clearline/takserver-venv].",
)
def demo(
    out: Path | None,
    delay_ms: float,
    episodes: int,
    virtual: bool,
    headless: bool,
    pause: float | None,
    duration: float | None,
    tak: bool,
    tak_venv: Path | None,
) -> None:
    """Walk through the recon-swarm cascade with and without the hotline, then a Monte Carlo.

    Scene 1 starts two node processes (US and PRC) with fresh keys, connected over mutual
    TLS through a delay proxy, and drives them through their local APIs in real time.
    """
    from clearline.demo import run_demo

    if tak and virtual:
        raise click.UsageError("--tak runs the live nodes: it cannot be used with --virtual")
    if tak_venv is not None and not tak:
        raise click.UsageError("--tak-venv is used only with --tak")
    if tak:
        from clearline.lab import takserver

        tak_venv = tak_venv or takserver.default_venv()
        why = takserver.cannot_run_here()
        if why is not None:
            fail(f"error: demo --tak cannot run here: {why}", 2)
    # Say now, not after the scenes, if an extra they need is missing.
    if not virtual:
        _need("node")
    if episodes:
        _need("sim")
    say = click.echo
    # Someone can watch only where a browser can open: not on a Linux box with no display.
    has_screen = sys.platform != "linux" or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    watching = not headless and not virtual and has_screen
    if watching:
        say = _opening_console(click.echo)
    if pause is None:
        pause = 3.0 if watching else 0.0
    if duration is None:
        duration = 30.0 if watching else 0.0
    from clearline.errors import TakServerError

    with failing(2, "error: demo ", (TakServerError,)):
        code = run_demo(
            out,
            delay_ms,
            say,
            episodes,
            live=not virtual,
            duration_s=duration,
            pause_s=pause,
            tak_venv=tak_venv if tak else None,
        )
    sys.exit(code)


def _opening_console(echo: Any) -> Any:
    """Print as usual, and open the console's sign-in page in a browser when the demo prints
    it (a local file: the page posts the tokens, which never travel in a URL), and the TAK
    map's page (`demo --tak`) when it prints that."""
    import re
    import webbrowser

    def say(line: str) -> None:
        echo(line)
        found = re.match(r"\s*(?:console|TAK map): (?:open )?(\S+)", line)
        if found:
            webbrowser.open(found.group(1))

    return say


@main.group()
def log() -> None:
    """Audit a side's log file (read only: nothing beside the file is created or changed)."""


_TRUST_HELP = (
    "keys.json pinning the keys to check signatures against, from outside the log "
    "(the format `log export` writes: {kid: {side, alg, crv, public_key}}). The log's own "
    "key table must agree with it."
)


def _trust(path: Path | None) -> TrustedKeys | None:
    """The trusted keys, or exit 2 with one line naming the file and the key."""
    from clearline.log.evidence import load_trust

    if path is None:
        return None
    with failing(2, "error: trust file "):
        return load_trust(path)


@log.command("verify")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--trust", type=click.Path(path_type=Path), default=None, help=_TRUST_HELP)
@click.option(
    "--strict",
    is_flag=True,
    help="Also fail if any entry is covered by no signed checkpoint of the owner.",
)
@click.option(
    "--roster",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The log owner's authority roster: re-check every human decision's approvals.",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --roster: the gate policy, to re-check officer counts as the gate did "
    "(decisions made under another policy hash are checked without it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def log_verify(
    path: Path,
    trust: Path | None,
    strict: bool,
    roster: Path | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Recompute every hash, proof and signature; exit 1 naming the first bad entry.

    Without --trust, signatures are checked only against the keys the file itself
    carries: that shows the file is intact, not who wrote it (whoever rewrote it could
    have put their own keys in it). With --trust KEYS, every signature is checked
    against the keys pinned in KEYS, and a key table that names a key KEYS does not
    hold, or holds for another side, fails.

    Entries after the largest size a signed checkpoint of the owner covers are
    reported as uncovered (the owner's own trailing checkpoint records are not
    counted): nothing signed commits to them, so the log could have been cut there
    without trace. --strict makes that a failure.

    With --roster, each human decision's approvals are re-checked offline against the
    officers' keys in that roster, as the gate checked them, and no single-use approval
    may authorize two acts.

    Exit status: 0 verified; 1 the log fails (or, with --strict, has uncovered
    entries); 2 the trust file, roster or policy is unusable.
    """
    from clearline.config import default_policy, load_policy, read_roster
    from clearline.log.store import verify_log

    keys = _trust(trust)
    authority = None
    if roster is not None:
        with failing(2):
            authority = (
                read_roster(roster),
                load_policy(policy_path) if policy_path is not None else default_policy(),
            )
    elif policy_path is not None:
        fail("error: --policy goes with --roster", 2)
    with failing(1, f"FAIL {path}: "):
        report = verify_log(path, keys, authority=authority)
    uncovered = (
        f"{report.uncovered} entries (from entry {report.first_uncovered}) are covered by no "
        "signed checkpoint of the owner"
    )
    other_policy = (
        f"{report.other_policy_decisions} allowed decisions name another policy than the one "
        "given, so their officer counts and caps were not re-checked (give that policy with "
        "--policy)"
    )
    failed = strict and (report.uncovered > 0 or report.other_policy_decisions > 0)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(report), sort_keys=True))
    else:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(report.by_type.items()))
        click.echo(
            f"{'FAIL' if failed else 'OK'} {path}: side {report.side}, {report.entries} entries "
            f"({kinds}), {report.checkpoints} signed checkpoints "
            f"(latest covers {report.last_checkpoint_size}), root {report.root}"
        )
        if report.authenticated:
            click.echo(f"keys: every signature checked against the keys pinned in {report.trust}")
        else:
            click.echo(
                f"keys: signatures checked only against the {len(report.keys)} keys the file "
                "itself carries: this shows the file is intact, not who signed it "
                "(pin the keys with --trust KEYS)"
            )
        if report.uncovered:
            click.echo(
                f"checkpoints: {uncovered}: nothing signed commits to them, so the log "
                "could have been cut or changed there without trace"
            )
        else:
            click.echo("checkpoints: every entry is covered by a signed checkpoint of the owner")
        if report.approvals_checked:
            click.echo(
                f"authority: {report.human_decisions} human decisions, each approval re-checked "
                f"against the officers' keys in {roster}; no autonomous act in an excluded "
                "domain or above the autonomy cap"
            )
            if report.other_policy_decisions:
                click.echo(f"authority: {other_policy}")
        elif report.human_decisions:
            click.echo(
                f"authority: {report.human_decisions} human decisions carry approvals not "
                "re-checked here (give --roster ROSTER)"
            )
    if failed:
        why = uncovered if report.uncovered else other_policy
        click.echo(f"FAIL {path}: {why} (--strict)", err=True)
        sys.exit(1)


@log.command("export")
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def log_export(path: Path, out: Path) -> None:
    """Write each entry's exact COSE_Sign1 bytes to OUT/*.cose, plus keys.json.

    keys.json is the log's own key table: as a --trust file it pins nothing
    unless it was taken from a log (or a side) you already trust.
    """
    from clearline.log.store import export_log

    count = export_log(path, out)
    click.echo(f"wrote {count} .cose files and keys.json to {out}")


@log.command("cross-check")
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--trust", type=click.Path(path_type=Path), default=None, help=_TRUST_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def log_cross_check(a: Path, b: Path, trust: Path | None, as_json: bool) -> None:
    """Compare one side's log A with the other side's log B, both ways.

    Both logs are verified first (against --trust KEYS if given), and each must pin
    the other's owner key. Then every message one side signed within a session
    is looked up in the other side's log by (key, session, sequence number):

    \b
    - conflict: both hold it, with different bytes (error);
    - insertion: the receiver holds a message signed by the sender's key that the
      sender's log lacks, or one claiming the sender's side under another key (error);
    - omission: the receiver lacks it although it logged a later message of the same
      session from the sender; sessions are in-order streams, so it was received
      and then removed (error);
    - not delivered: above the last message of that session the receiver logged:
      lost with the link or in flight (counted, not an error).

    Hellos and local records (decisions, checkpoint records) are not compared.

    Exit status: 0 the logs agree; 1 a discrepancy, or a log fails on its own;
    2 the trust file is unusable.
    """
    from clearline.log.crosscheck import cross_check

    keys = _trust(trust)
    with failing(1, "FAIL "):
        report = cross_check(a, b, keys)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(report), sort_keys=True))
    else:
        pair = f"{a} ({report.a.side}) and {b} ({report.b.side})"
        if report.ok:
            click.echo(f"OK {pair}: no conflicts, insertions or omissions")
        else:
            click.echo(f"FAIL {pair}: {len(report.findings)} discrepancies")
        for d in report.directions:
            click.echo(
                f"{d.sender} -> {d.receiver}: {d.sent} sent in sessions, {d.delivered} held by "
                f"both byte for byte, {d.not_delivered} not delivered, {d.omissions} omitted, "
                f"{d.insertions} inserted, {d.conflicts} conflicting"
            )
        if report.authenticated:
            click.echo(f"keys: every signature checked against the keys pinned in {trust}")
        else:
            click.echo(
                "keys: each log's own keys, and each owner key as the other log pins it; "
                "nothing pinned from outside (pass --trust KEYS)"
            )
        for side in (report.a, report.b):
            if side.uncovered:
                click.echo(
                    f"note: {side.path} has {side.uncovered} entries covered by no signed "
                    "checkpoint; its tail could have been cut, which would show here as "
                    "messages not delivered"
                )
        for finding in report.findings:
            click.echo(f"{finding.kind}: {finding.detail}", err=True)
    if not report.ok:
        sys.exit(1)


@main.group()
def policy() -> None:
    """Gate policies."""


@policy.command("check")
@click.argument("path", type=click.Path(path_type=Path), required=False)
def policy_check(path: Path | None) -> None:
    """Validate a policy file (the default policy if none) and print its canonical hash."""
    from clearline.config import default_policy, load_policy

    loaded = load_policy(path) if path is not None else default_policy()
    click.echo(f"OK {path or 'default policy'}: {loaded.name}, hash {loaded.hash.hex()}")


@policy.command("show-default")
def policy_show_default() -> None:
    """Print the default policy file."""
    from clearline.config import default_policy_text

    click.echo(default_policy_text(), nl=False)


@main.group()
def sim() -> None:
    """Monte Carlo of algorithmic escalation, on the real protocol and gate."""


def _arms(value: str) -> list[str]:
    from clearline.sim.outcomes import ARMS

    names = [a.strip() for a in value.split(",") if a.strip()]
    valid = [a.value for a in ARMS]
    for name in names:
        if name not in valid:
            raise click.BadParameter(f"unknown arm {name!r}; expected some of {', '.join(valid)}")
    if not names:
        raise click.BadParameter("expected at least one arm")
    return names


_ARMS_HELP = "Comma-separated arms: none, analog, hotline, hotline+gate, gate (default: all)."


def _run_options(f: Any) -> Any:
    from clearline.sim.executors import EXECUTORS_HELP
    from clearline.sim.signers import SIGNERS

    options = [
        click.option("--seed", type=int, default=0, show_default=True, help="Run seed."),
        click.option(
            "--arms", "arms", default="none,analog,hotline,hotline+gate,gate", help=_ARMS_HELP
        ),
        click.option("--executor", default="process", show_default=True, help=EXECUTORS_HELP),
        click.option(
            "--workers",
            type=click.IntRange(1, 4096),
            default=None,
            help="Worker processes (default: one per core).",
        ),
        click.option(
            "--signer",
            type=click.Choice(SIGNERS),
            default="keyed-hash",
            show_default=True,
            help="ed25519 runs real signatures; keyed-hash is the fast stand-in.",
        ),
        click.option(
            "--batch",
            type=click.IntRange(1, 1_000_000),
            default=200,
            show_default=True,
            help="Episodes per task.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _load_scenario(name: str) -> Any:
    from clearline.sim.scenario import load_scenario

    with failing(2):
        return load_scenario(name)


@sim.command("run")
@click.argument("scenario")
@click.option(
    "--episodes",
    type=click.IntRange(1, 100_000_000),
    default=None,
    help="Episodes per arm (default 1000; with --ci-halfwidth, the cap: 1,000,000).",
)
@click.option(
    "--ci-halfwidth",
    type=click.FloatRange(0, 0.5, min_open=True, max_open=True),
    default=None,
    help="Stop once every arm's kinetic-before-human interval is this narrow.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Results folder (default: sim-results/SCENARIO-sSEED).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print only the JSON summary on stdout, with where the results went (`out`, `files`) "
    "and the command that writes the report (`report_command`, to `report_writes`); `sides` "
    "names the sides that outcomes ending in _a and _b are about.",
)
@_run_options
def sim_run(
    scenario: str,
    episodes: int | None,
    ci_halfwidth: float | None,
    out: Path | None,
    as_json: bool,
    seed: int,
    arms: str,
    executor: str,
    workers: int | None,
    signer: Any,
    batch: int,
) -> None:
    """Run SCENARIO (a shipped name or a YAML file) over the arms; write Parquet and a summary."""
    from clearline.sim.montecarlo import run
    from clearline.sim.outcomes import InvariantError
    from clearline.sim.table import summary_table

    loaded = _load_scenario(scenario)
    arm_list = _arms(arms)
    cap = episodes if episodes is not None else (1_000_000 if ci_halfwidth else 1000)
    where = out or Path("sim-results") / f"{loaded.scenario.name}-s{seed}"
    with (
        failing(2, errors=(ValueError, ClearlineError)),
        failing(3, "INVARIANT BROKEN (a bug, not a result): ", (InvariantError,)),
    ):
        result = run(
            loaded,
            arms=arm_list,
            episodes=cap,
            ci_halfwidth=ci_halfwidth,
            seed=seed,
            out=where,
            executor=executor,
            workers=workers,
            batch=batch,
            signer=signer,
            progress=sys.stderr.isatty(),
        )
    summary = result.summary
    if as_json:
        keep = {k: summary[k] for k in ("scenario", "seed", "signer", "sides", "ladder")}
        keep["arms"] = summary["arms"]
        keep["out"] = str(where)
        keep["files"] = {
            "episodes": str(where / "episodes.parquet"),
            "summary": str(where / "summary.json"),
        }
        keep["report_command"] = f"clearline sim report {where}"
        keep["report_writes"] = str(where / "report.html")
        click.echo(json.dumps(keep, sort_keys=False))
        return
    click.echo(summary_table(summary))
    click.echo(
        f"\nresults in {where} (episodes.parquet, summary.json); "
        f"figures: clearline sim report {where}"
    )


@sim.command("sweep")
@click.argument("scenario")
@click.option(
    "--param",
    "params",
    multiple=True,
    required=True,
    help="PATH=v1,v2,... into the scenario (repeat for a grid), e.g. network.one_way_ms=10,55,300",
)
@click.option(
    "--episodes",
    type=click.IntRange(1, 100_000_000),
    default=500,
    show_default=True,
    help="Episodes per cell and arm.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Results folder (default: sim-results/SCENARIO-sweep-sSEED).",
)
@_run_options
def sim_sweep(
    scenario: str,
    params: tuple[str, ...],
    episodes: int,
    out: Path | None,
    seed: int,
    arms: str,
    executor: str,
    workers: int | None,
    signer: Any,
    batch: int,
) -> None:
    """Run SCENARIO over a grid of parameter values; one summary per cell in sweep.json."""
    from clearline.sim.display import format_estimate
    from clearline.sim.sweep import Axis, sweep

    loaded = _load_scenario(scenario)
    try:
        axes = [Axis.parse(p) for p in params]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--param") from None
    where = out or Path("sim-results") / f"{loaded.scenario.name}-sweep-s{seed}"
    with failing(2, errors=(ValueError, ClearlineError)):
        result = sweep(
            loaded,
            axes,
            out=where,
            arms=_arms(arms),
            episodes=episodes,
            seed=seed,
            executor=executor,
            workers=workers,
            batch=batch,
            signer=signer,
            progress=sys.stderr.isatty(),
        )
    for cell in result["cells"]:
        parts = ", ".join(f"{k}={v}" for k, v in cell["settings"].items())
        estimates = "  ".join(
            f"{arm} {format_estimate(o['kinetic_before_any_human'])}"
            for arm, o in cell["arms"].items()
        )
        click.echo(f"{parts}: {estimates}")
    click.echo(f"\nresults in {where}; heatmaps: clearline sim report {where}")


@sim.command("sensitivity")
@click.argument("scenario")
@click.option(
    "--param",
    "params",
    multiple=True,
    required=True,
    help="PATH=LOW:HIGH[:log] into the scenario (repeat), e.g. network.one_way_ms=10:300:log",
)
@click.option(
    "--base-samples",
    type=click.IntRange(2, 1 << 20),
    required=True,
    help="Sobol: N, a power of two (N (D + 2) points); morris: trajectories (N (D + 1)).",
)
@click.option(
    "--method",
    type=click.Choice(["sobol", "morris"]),
    default="sobol",
    show_default=True,
    help="sobol: first-order and total indices; morris: cheaper screening (mu*, sigma).",
)
@click.option(
    "--episodes",
    type=click.IntRange(1, 100_000_000),
    default=200,
    show_default=True,
    help="Episodes per point and arm.",
)
@click.option(
    "--levels",
    type=click.IntRange(2, 100),
    default=4,
    show_default=True,
    help="Morris: levels of each parameter's grid (even).",
)
@click.option(
    "--conf-level",
    type=click.FloatRange(0.5, 1, max_open=True),
    default=0.95,
    show_default=True,
    help="Level of the bootstrap intervals.",
)
@click.option(
    "--resamples",
    type=click.IntRange(10, 1_000_000),
    default=1000,
    show_default=True,
    help="Bootstrap resamples for the intervals.",
)
@click.option(
    "--max-points",
    type=click.IntRange(1, None),
    default=None,
    help="Run at most this many new points, then stop; the same command goes on from there.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Results folder (default: sim-results/SCENARIO-sensitivity-sSEED); "
    "running again with the same folder resumes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON summary on stdout.")
@_run_options
def sim_sensitivity(
    scenario: str,
    params: tuple[str, ...],
    base_samples: int,
    method: Any,
    episodes: int,
    levels: int,
    conf_level: float,
    resamples: int,
    max_points: int | None,
    out: Path | None,
    as_json: bool,
    seed: int,
    arms: str,
    executor: str,
    workers: int | None,
    signer: Any,
    batch: int,
) -> None:
    """Which parameters of SCENARIO drive P(kinetic before any human), in each arm and
    against none: Sobol indices (or Morris screening) over PATH=LOW:HIGH ranges."""
    _need("sim")  # before the parameters are read: SALib comes only when sampling
    from clearline.errors import StudyError
    from clearline.sim.outcomes import InvariantError
    from clearline.sim.sensitivity import Param, make_study, run_study, summary_table

    parsed = []
    for i, text in enumerate(params, start=1):
        try:
            parsed.append(Param.parse(text))
        except StudyError as exc:
            fail(f"error: --param {i} of {len(params)}: {exc}", 2)
    loaded = _load_scenario(scenario)
    where = out or Path("sim-results") / f"{loaded.scenario.name}-sensitivity-s{seed}"
    with (
        failing(2, errors=(ValueError, ClearlineError)),
        failing(3, "INVARIANT BROKEN (a bug, not a result): ", (InvariantError,)),
    ):
        study = make_study(
            loaded,
            parsed,
            method=method,
            base_samples=base_samples,
            episodes=episodes,
            arms=_arms(arms),
            seed=seed,
            signer=signer,
            levels=levels,
        )
        result = run_study(
            loaded,
            study,
            out=where,
            executor=executor,
            workers=workers,
            batch=batch,
            max_points=max_points,
            conf_level=conf_level,
            resamples=resamples,
            progress=sys.stderr.isatty() and not as_json,
        )
    if as_json:
        click.echo(json.dumps({**result.summary, "out": str(where)}))
        return
    click.echo(summary_table(result.summary))
    run = result.summary["run"]
    click.echo(
        f"\n{run['points_run']} points run in {run['elapsed_s']} s "
        f"({run['points_per_s']} points/s, {run['workers']} workers); "
        f"results in {where} (points/*.parquet"
        + (", sensitivity.json); " if result.complete else "); ")
        + (f"figures: clearline sim report {where}" if result.complete else "not complete yet")
    )


@sim.command("report")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def sim_report(folder: Path) -> None:
    """Render figures and report.html for a `sim run` or `sim sweep` results folder."""
    from clearline.sim.report import write_report

    with failing(2, errors=(FileNotFoundError, KeyError, ValueError)):
        page = write_report(folder)
    click.echo(f"wrote {page}")


@sim.command("validate")
@click.argument("scenarios", nargs=-1, required=True)
def sim_validate(scenarios: tuple[str, ...]) -> None:
    """Check scenario files (or shipped names); errors give file:line and the expectation."""
    from clearline.sim.scenario import load_scenario

    failed = False
    for name in scenarios:
        try:
            loaded = load_scenario(name)
        except ClearlineError as exc:
            click.echo(f"FAIL {exc}", err=True)
            failed = True
            continue
        s = loaded.scenario
        click.echo(
            f"OK {loaded.source}: {s.name} - {s.title} ({len(s.assets)} assets, "
            f"{len(s.false_alarms) + len(s.third_party.spoof_tracks)} false tracks, "
            f"{len(s.accidents)} accidents; policy {loaded.policy.name})"
        )
    sys.exit(1 if failed else 0)


@sim.command("list")
def sim_list() -> None:
    """List the scenarios that ship with clearline."""
    from clearline.sim.scenario import load_scenario, shipped_scenarios

    for name in shipped_scenarios():
        click.echo(f"{name:<22} {load_scenario(name).scenario.title}")


@sim.command("schema")
def sim_schema() -> None:
    """Print the JSON Schema of scenario files."""
    from clearline.sim.scenario import json_schema

    click.echo(json_schema(), nl=False)


@main.group()
def bench() -> None:
    """Benchmarks (run by hand; figures belong in docs/performance.md)."""


@bench.command("sim")
@click.option("--json", "as_json", is_flag=True, help="Print only the figures as JSON.")
@click.option(
    "--episodes",
    type=click.IntRange(10, 10_000_000),
    default=1000,
    show_default=True,
    help="Episodes per arm for the single-core engine comparison.",
)
@click.option(
    "--parallel-episodes",
    type=click.IntRange(10, 10_000_000),
    default=20_000,
    show_default=True,
    help="Episodes per arm for the executor comparison.",
)
@click.option("--workers", type=click.IntRange(1, 4096), default=2, show_default=True)
@click.option("--no-dask", is_flag=True, help="Skip the Dask measurement (a local cluster).")
@click.option(
    "--swarm",
    is_flag=True,
    help="Instead: the swarm scenario's cost per episode against the canonical one's, in the "
    "same run, and how many swarm episodes fit the budget.",
)
def bench_sim_command(
    as_json: bool,
    episodes: int,
    parallel_episodes: int,
    workers: int,
    no_dask: bool,
    swarm: bool,
) -> None:
    """Episodes per second per core against SimPy (and how much of an episode is the engine),
    parallel efficiency of the process pool and of Dask, Dask's overhead."""
    from clearline.sim.benchmark import bench_sim, bench_swarm

    say = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
    if swarm:
        results = bench_swarm(workers=workers, say=say)
        if as_json:
            click.echo(json.dumps(results))
            return
    else:
        results = bench_sim(episodes, parallel_episodes, workers, dask=not no_dask, say=say)
    if as_json:
        keep = (
            "episodes_per_s",
            "simpy_episodes_per_s",
            "ratio_vs_simpy",
            "engine_share",
            "parallel_efficiency",
            "dask_parallel_efficiency",
            "dask_cluster_start_s",
            "dask_local_parallel_efficiency",
        )
        click.echo(json.dumps({k: results[k] for k in keep if k in results}))
        return
    for key, value in results.items():
        click.echo(f"{key:<32} {value}")


@main.group()
def keys() -> None:
    """Signing keys and TLS certificates."""


@keys.command("init")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--side", required=True, help="The side these keys speak for, e.g. US.")
@click.option(
    "--host",
    "hosts",
    multiple=True,
    default=("localhost", "127.0.0.1"),
    show_default=True,
    help="Names and addresses for the certificate (repeat).",
)
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
@click.option("--force", is_flag=True, help="Replace existing keys for this side.")
def keys_init(folder: Path, side: str, hosts: tuple[str, ...], days: int, force: bool) -> None:
    """Create SIDE's Ed25519 signing key and self-signed TLS certificate in FOLDER."""
    from clearline.node.keys import init_keys

    paths = init_keys(folder, side, hosts, days, force)
    for what, path in paths.items():
        click.echo(f"{what:<19} {path}")
    click.echo(
        f"give the peer {paths['signing_pub'].name} and {paths['tls_crt'].name}; "
        "keep the rest here (mode 600). The api-token files are bearer tokens for your own "
        f"side's systems, one per role; the node loads their hashes from "
        f"{paths['api_tokens'].name}"
    )


@keys.command("tls")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--side", required=True, help="The side whose TLS pair to replace, e.g. US.")
@click.option(
    "--host",
    "hosts",
    multiple=True,
    default=("localhost", "127.0.0.1"),
    show_default=True,
    help="Names and addresses for the certificate (repeat).",
)
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
def keys_tls(folder: Path, side: str, hosts: tuple[str, ...], days: int) -> None:
    """Replace SIDE's TLS key and certificate in FOLDER (the previous pair is kept as *.old);
    the signing key and API tokens stay."""
    from clearline.node.keys import rotate_tls

    paths = rotate_tls(folder, side, hosts, days)
    for what, path in paths.items():
        click.echo(f"{what:<19} {path}")
    click.echo(
        f"give the peer the new {paths['tls_crt'].name} (its [peer] certificate), then send "
        "SIGHUP to both nodes: the link that is up stays up, new connections use the new pair"
    )


@keys.command("token")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--side", required=True, help="The side whose node the token is for, e.g. US.")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["observer", "sensor", "operator"]),
    help="observer reads; sensor also posts observations and telemetry; operator also posts "
    "actions and checkpoints.",
)
@click.option("--name", default=None, help="The token's name (its file's suffix) [default: ROLE].")
@click.option("--force", is_flag=True, help="Replace the token of that name.")
def keys_token(folder: Path, side: str, role: str, name: str | None, force: bool) -> None:
    """Add a bearer token for SIDE's local API: FOLDER/SIDE.api-token.NAME (mode 600), its hash
    in FOLDER/SIDE.api-tokens.json. A running node loads tokens when it starts."""
    from clearline.node.keys import check_side
    from clearline.node.tokens import Role, add_token, tokens_file

    path = add_token(folder, check_side(side), Role(role), name or role, force)
    click.echo(f"{role} token: {path} (mode 600)")
    click.echo(f"its hash is in {tokens_file(folder, side)}; restart the node to load it")


@main.group()
def node() -> None:
    """The hotline node."""


@node.command("serve")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The node's TOML file.",
)
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the API address here (JSON) once the node is serving.",
)
@click.option(
    "--log-json",
    is_flag=True,
    help="Write the node's log lines (link changes, dial failures, refusals, policy or "
    "roster changes) as JSON objects, one per line, instead of text.",
)
def node_serve(config_path: Path, ready_file: Path | None, log_json: bool) -> None:
    """Run a node until SIGTERM; then flush, checkpoint and close its log."""
    from clearline.node.serve import main as serve_main

    with failing(2):
        sys.exit(serve_main(config_path, ready_file, log_json))


@main.group()
def witness() -> None:
    """A neutral witness: cosigns logs' checkpoints (C2SP tlog-witness)."""


@witness.command("init")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--name",
    required=True,
    help="The witness's name on its cosignatures, e.g. witness.example/w1.",
)
def witness_init(folder: Path, name: str) -> None:
    """Create the witness's Ed25519 cosigning key in FOLDER (witness.key, mode 600; and
    witness.pub, the public key the nodes' configurations name)."""
    from clearline.witness.config import init_witness_key

    key, key_path, pub_path = init_witness_key(folder, name)
    click.echo(f"cosigning key  {key_path} (mode 600)")
    click.echo(f"public key     {pub_path}: {key.public_key.hex()}")
    click.echo(f"verifier key   {key.vkey()}")
    click.echo(
        "give each node the name, the public key and the witness's URL ([[witness.servers]])"
    )


@witness.command("serve")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The witness's TOML file.",
)
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the witness's URL and key here (JSON) once it is serving.",
)
def witness_serve(config_path: Path, ready_file: Path | None) -> None:
    """Serve POST /add-checkpoint until SIGTERM; state is committed before each answer."""
    _need("node")
    from clearline.witness.server import main as serve_main

    with failing(2):
        sys.exit(serve_main(config_path, ready_file))


@main.group()
def tak() -> None:
    """Cursor-on-Target and TAK servers (a node's own CoT is its [tak] section)."""


def _tak_server(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from clearline.tak.client import parse_server_url

    try:
        parse_server_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@tak.command("map")
@click.option(
    "--server",
    required=True,
    callback=_tak_server,
    help="The TAK server's CoT port, as pytak's COT_URL names it: tcp://HOST:PORT (plain TCP, "
    "XML or TAK Protocol stream).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Serve the page here.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8600,
    show_default=True,
    help="The page's port; 0 picks a free one.",
)
@click.option(
    "--callsign",
    default="clearline map",
    show_default=True,
    help="The name the map announces itself by to the TAK server, as a TAK user does.",
)
@click.option(
    "--max-markers",
    type=click.IntRange(1, 1_000_000),
    default=2000,
    show_default=True,
    help="Uids kept at most; past it the least recently updated is dropped.",
)
def tak_map(server: str, host: str, port: int, callsign: str, max_markers: int) -> None:
    """Show a TAK server's picture in a browser: clearline's own minimal TAK map client.

    It joins the server as a TAK user, keeps the latest event of each uid until it goes
    stale, and serves a page that draws the tracks (affiliation, callsign, course) and, on a
    track a clearline node asked about, the hotline's state. Ctrl-C stops it.
    """
    import asyncio

    _need("node")
    from clearline.tak.mapserver import serve_map

    with failing(1, "error: tak map: "):

        def say(line: str) -> None:
            click.echo(line)
            sys.stdout.flush()

        sys.exit(asyncio.run(serve_map(server, host, port, callsign, max_markers, say)))


@bench.command("link")
@click.option("--json", "as_json", is_flag=True, help="Print only the figures as JSON.")
@click.option(
    "--rounds",
    type=click.IntRange(10, 1_000_000),
    default=2000,
    show_default=True,
    help="Round trips for the TCP and gRPC echoes.",
)
@click.option("--clarifications", type=click.IntRange(10, 100_000), default=500, show_default=True)
@click.option(
    "--records",
    type=click.IntRange(1000, 100_000_000),
    default=200_000,
    show_default=True,
    help="Telemetry records for the throughput run.",
)
def bench_link_command(as_json: bool, rounds: int, clarifications: int, records: int) -> None:
    """TCP echo, gRPC mTLS echo, clarification through two nodes, telemetry, 55 ms path."""
    from clearline.lab.benchmark import bench_link

    say = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
    results = bench_link(rounds, clarifications, records, say)
    if as_json:
        keep = ("tcp_echo", "grpc_unary", "clarification", "telemetry", "wan")
        click.echo(json.dumps({k: results[k] for k in keep}))
        return
    click.echo(json.dumps(results, indent=2))


@main.command()
@click.option(
    "--results",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="A `sim run`, `sim sweep` or `sim sensitivity` results folder to show.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8500,
    show_default=True,
    help="0 picks a free port.",
)
def console(results: Path | None, host: str, port: int) -> None:
    """Serve the operator console (the simulation view of RESULTS; live views come from nodes)."""
    import socket

    import uvicorn

    from clearline.console.server import results_app, results_page

    listener = socket.create_server((host, port))
    chosen = listener.getsockname()[1]
    page = results_page(results)
    click.echo(f"console: http://{host}:{chosen}/console/{page}", err=False)
    sys.stdout.flush()
    uvicorn.Server(uvicorn.Config(results_app(results), log_level="warning")).run(
        sockets=[listener]
    )


@sim.command("dst")
@click.option("--seeds", type=click.IntRange(1, 10_000_000), default=100, show_default=True)
@click.option("--start", type=int, default=0, show_default=True, help="First seed.")
@click.option(
    "--horizon",
    type=click.FloatRange(1, 86_400),
    default=60.0,
    show_default=True,
    help="Virtual seconds per seed.",
)
def sim_dst(seeds: int, start: int, horizon: float) -> None:
    """Deterministic simulation testing: random faults and workloads against the real Session
    and gate, every promise checked after every event. Prints the seed of any failure."""
    from clearline.sim.dst import run_seed
    from clearline.sim.outcomes import InvariantError

    totals = {
        "events": 0,
        "queries": 0,
        "answered": 0,
        "expired": 0,
        "decisions": 0,
        "closed": 0,
        "messages": 0,
    }
    began = time.perf_counter()
    for seed in range(start, start + seeds):
        with failing(1, "FAIL ", (InvariantError,)):
            result = run_seed(seed, horizon)
        for key in totals:
            totals[key] += getattr(result, key)
    elapsed = time.perf_counter() - began
    click.echo(
        f"OK {seeds} seeds ({start}..{start + seeds - 1}), {horizon:g} virtual s each, "
        f"{elapsed:.1f} s: " + ", ".join(f"{v} {k}" for k, v in totals.items())
    )


@bench.command("soak")
@click.option("--seconds", type=click.FloatRange(10, 7 * 86_400), default=300, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print only the results as JSON.")
def bench_soak_command(seconds: float, as_json: bool) -> None:
    """Two nodes under sustained load: resident memory, latency and log growth over time."""
    from clearline.lab.soak import run_soak

    say = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
    results = run_soak(seconds, say)
    click.echo(json.dumps(results, indent=None if as_json else 2))
    flat = results["us_memory_flat"] and results["prc_memory_flat"]
    sys.exit(0 if flat else 1)


@main.group()
def officer() -> None:
    """Officers: enrol one by public key, sign approvals that make a decision human."""


@officer.command("enrol")
@click.argument("officer_id")
@click.option("--side", required=True, help="The side the officer serves, e.g. US.")
@click.option(
    "--roster",
    "roster_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The side's roster file (created if absent); the node's config names it.",
)
@click.option(
    "--keys",
    "keys_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Where the officer's key is written (keep it with the officer, not the node).",
)
@click.option("--name", default="", help="A display name for the roster.")
def officer_enrol(officer_id: str, side: str, roster_path: Path, keys_dir: Path, name: str) -> None:
    """Create OFFICER_ID's approval key and enrol its public key in the roster."""
    from clearline.officer import enrol

    roster, key_path, pub_path = enrol(roster_path, keys_dir, officer_id, side, name)
    click.echo(f"officer key  {key_path} (mode 600: only this officer may read it)")
    click.echo(f"public key   {pub_path}")
    click.echo(
        f"roster       {roster_path}: {len(roster.officers)} officer(s) of {side}, "
        f"hash {roster.hash.hex()}"
    )
    click.echo("restart the node to load the new roster; the peer sees its hash change")


@officer.command("approve")
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The officer's key (ID.officer.key).",
)
@click.option(
    "--pending",
    "pending",
    type=click.File("r"),
    default=None,
    help="The answer of GET /v1/approvals/pending (a file, or - for stdin): approve the act "
    "named by --action from it.",
)
@click.option("--action", "action_id", default=None, help="The action id approved.")
@click.option("--side", default=None, help="The side whose gate checks it (from --pending).")
@click.option("--rung", default=None, help="The rung approved (from --pending).")
@click.option("--domain", default=None, help="The domain the act is filed under (from --pending).")
@click.option("--target", default=None, help="The act's target track, if it has one.")
@click.option(
    "--standing",
    is_flag=True,
    help="A standing approval: any rung up to --rung in --domain (never an excluded one).",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The gate policy the approval is for (default: the shipped one): a standing "
    "approval for one of its excluded rungs or domains is refused here, as the gate would.",
)
@click.option(
    "--valid-for",
    type=click.IntRange(1, 86_400),
    default=600,
    show_default=True,
    help="Seconds the approval is valid from now (the policy caps it; default policy 1 h).",
)
def officer_approve(
    key_path: Path,
    pending: Any,
    action_id: str | None,
    side: str | None,
    rung: str | None,
    domain: str | None,
    target: str | None,
    standing: bool,
    policy_path: Path | None,
    valid_for: int,
) -> None:
    """Sign an approval and print it (base64), for the `approvals` list of POST /v1/actions."""
    from clearline.config import default_policy, load_policy
    from clearline.officer import approve, encode, pending_act

    if pending is not None:
        if standing:
            raise click.UsageError("--standing and --pending do not go together")
        act = pending_act(pending.name, pending.read(), action_id)
        action_id = act["action_id"]
        side, rung, domain = act["side"], act["rung"], act["domain"]
        target = act.get("target")
    missing = [
        name
        for name, value in (("--side", side), ("--rung", rung), ("--domain", domain))
        if value is None
    ]
    if not standing and action_id is None:
        missing.append("--action (or --standing)")
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (or give --pending)")
    if standing and action_id is not None:
        raise click.UsageError("a standing approval names no --action")
    assert side is not None and rung is not None and domain is not None
    if standing:
        policy = load_policy(policy_path) if policy_path is not None else default_policy()
        if rung in policy.excluded_rungs or domain in policy.exclusions:
            raise click.UsageError(
                f"a standing approval never covers an excluded rung or domain "
                f"({sorted(policy.excluded_rungs)}, {sorted(policy.exclusions)}); "
                "approve the one act instead (--action)"
            )
        if rung not in policy.rungs:
            raise click.UsageError(f"--rung {rung!r} is not on the policy's ladder")
    approval = approve(
        key_path,
        side,
        rung,
        domain,
        time.time_ns() // 1000,
        valid_for,
        None if standing else action_id,
        target,
    )
    what = f"standing, up to {rung} in {domain}" if standing else f"{action_id}: {rung} in {domain}"
    click.echo(f"approval ({what}, valid {valid_for} s):", err=True)
    click.echo(encode(approval))
