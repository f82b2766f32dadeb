"""``meldpunt sim``: the simulated internet (thin).

meldpunt sim                       # hosters, mail sink and tables, beside `meldpunt serve`
meldpunt sim scenario --seed 1 --hosters 10 --urls 40 --days 3 --format json
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from meldpunt.cli.common import fail, stderr

__all__ = ["sim_app"]

sim_app = typer.Typer(
    help=(
        "The simulated internet: hosters serving benign pictures on 127.0.0.x, their names, "
        "networks and abuse desks, and a mail sink that hands notices to them. Without a "
        "command: run it beside `meldpunt serve` until Ctrl-C."
    ),
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode=None,
    invoke_without_command=True,
)


class ScenarioFormat(StrEnum):
    json = "json"
    summary = "summary"


@sim_app.callback()
def live_command(
    context: typer.Context,
    seed: Annotated[int, typer.Option(help="Draws the hosters' behaviours and content.")] = 1,
    hosters: Annotated[int, typer.Option(min=1, max=60000, help="How many hosters.")] = 12,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Their HTTP port (0: free).")] = 0,
    smtp_port: Annotated[
        int, typer.Option(min=0, max=65535, help="The mail sink's port (0: free).")
    ] = 0,
    reports: Annotated[
        int, typer.Option(min=0, help="URLs to report through meldpunt's intake (0: none).")
    ] = 24,
    report_hours: Annotated[
        float, typer.Option(min=0.0, help="Hours over which those reports arrive.")
    ] = 3.0,
    folder: Annotated[
        Path | None, typer.Option(help="Where its files go (default: <data_dir>/sim/live).")
    ] = None,
) -> None:
    """Run the simulation until Ctrl-C."""
    if context.invoked_subcommand is not None:
        return
    import threading

    from sqlalchemy.engine import make_url

    from meldpunt.config import get_settings
    from meldpunt.sim.live import LiveSimulation
    from meldpunt.store import get_engine, init_db, make_sessionmaker

    settings = get_settings()
    init_db()
    where = folder or Path(settings.data_dir) / "sim" / "live"
    live = LiveSimulation(
        where,
        make_sessionmaker(get_engine()),
        settings,
        seed=seed,
        hosters=hosters,
        urls=reports,
        report_hours=report_hours,
        port=port,
        smtp_port=smtp_port,
        continuous=False,
    )
    try:
        live.start()
    except OSError as exc:
        fail(f"the simulation cannot listen: {exc}")
    sim = live.sim
    lines = "\n".join(f"    export {name}='{value}'" for name, value in sim.environment().items())
    database = make_url(settings.database_url).render_as_string(hide_password=True)
    stop = threading.Event()
    try:  # from here on Ctrl-C stops the simulation cleanly, even while this prints
        print(
            f"""Simulation: {hosters} hosters on 127.0.0.2... port {sim.internet.port}, \
mail sink on {sim.sink.host}:{sim.sink.port}
Name table:  {sim.internet.names_path}
Tables:      networks and abuse contacts loaded into {database.split("?")[0]}
Reports:     {reports} URLs over {report_hours:g} hours

Run meldpunt beside it with these settings (also in {sim.folder / "meldpunt-sim.toml"}):

{lines}
    meldpunt serve

Ctrl-C ends the simulation.""",
            flush=True,
        )
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        live.stop()


@sim_app.command("scenario")
def scenario_command(
    seed: Annotated[int, typer.Option(help="Draws hosters, content, reports and grades.")] = 1,
    hosters: Annotated[int, typer.Option(min=1, max=60000, help="How many hosters.")] = 10,
    urls: Annotated[int, typer.Option(min=1, help="How many URLs are reported.")] = 40,
    days: Annotated[float, typer.Option(min=0.0, help="Simulated days.")] = 3.0,
    start: Annotated[
        str | None, typer.Option(help="The simulated start (ISO time; default: now).")
    ] = None,
    known: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of URLs the registry knows.")
    ] = 0.5,
    abroad: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of hosters in another country.")
    ] = 0.1,
    pictures: Annotated[
        int | None,
        typer.Option(min=1, help="Distinct pictures of each kind (default: one per URL)."),
    ] = None,
    mix: Annotated[
        str | None,
        typer.Option(help="Behaviour weights, e.g. 'removes=3,ignores=1,moves=1' (others 0)."),
    ] = None,
    output_format: Annotated[
        ScenarioFormat, typer.Option("--format", "-f", help="json (the whole record) or summary.")
    ] = ScenarioFormat.json,
) -> None:
    """Run a whole scenario in this process on a controlled clock (days in seconds): the
    simulation, reports through meldpunt's intake, its worker, mail to the sink, an analyst.
    Prints one JSON object; the records stay in the configured database."""
    from meldpunt.config import get_settings
    from meldpunt.sim.behaviour import BehaviourKind
    from meldpunt.sim.scenario import ScenarioConfig, parse_start, run_scenario
    from meldpunt.store import get_engine, init_db, make_sessionmaker

    weights: dict[BehaviourKind, float] | None = None
    if mix:
        try:
            weights = {BehaviourKind(k.strip()): float(v) for k, v in _pairs(mix)}
        except ValueError as exc:
            fail(f"--mix: {exc}; kinds: {', '.join(BehaviourKind)}")
        if not any(w > 0 for w in weights.values()):
            fail("--mix: give at least one behaviour a weight above 0")
    try:
        begin = parse_start(start) if start else None
    except ValueError as exc:
        fail(f"--start: {exc}")
    config = ScenarioConfig(
        seed=seed, hosters=hosters, urls=urls, days=days, start=begin, known_share=known,
        abroad=abroad, mix=weights, pictures=pictures,
    )  # fmt: skip
    settings = get_settings()
    init_db()
    sessions = make_sessionmaker(get_engine())
    console = stderr()
    if console.is_terminal:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("scenario"),
            BarColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("", total=1.0)

            def show(step: object) -> None:
                from meldpunt.sim.scenario import ScenarioProgress

                assert isinstance(step, ScenarioProgress)
                moment = step.now.strftime("%Y-%m-%d %H:%M")
                bar.update(task, completed=step.fraction, description=f"{moment} step {step.steps}")

            result = run_scenario(config, sessions, settings, progress=show)
    else:
        result = run_scenario(config, sessions, settings)
    record = result.as_json()
    if output_format is ScenarioFormat.summary:
        record = {k: v for k, v in record.items() if k != "urls"}
    json.dump(record, sys.stdout, indent=None if output_format is ScenarioFormat.json else 2)
    sys.stdout.write("\n")


def _pairs(text: str) -> list[tuple[str, str]]:
    found = []
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r} is not name=weight")
        found.append((name, value))
    return found
