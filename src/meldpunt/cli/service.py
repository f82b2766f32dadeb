"""`meldpunt serve`, `meldpunt worker` and `meldpunt demo`: running the service."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

import meldpunt
from meldpunt.cli.common import fail, hash_many, hash_options, print_hashes
from meldpunt.cli.ports import port_problem


def _need_free_port(host: str, port: int, hint: str) -> None:
    """End the command at once, before anything is loaded, when it could not listen."""
    problem = port_problem(host, port)
    if problem is not None:
        fail(f"{problem}. Choose another: {hint}")


def demo_command(
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the service.")] = True,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    sim: Annotated[
        bool,
        typer.Option(
            "--sim/--no-sim", help="Run the simulated internet beside the service (with --serve)."
        ),
    ] = True,
    speed: Annotated[
        float, typer.Option(min=1.0, max=100000.0, help="Simulated seconds per real second.")
    ] = 144.0,
) -> None:
    """Load the benign demo set, a demo platform and hotline, print their keys and a check,
    then serve, with the simulated internet beside it: hosters on 127.0.0.x, reports arriving,
    notices to a mail sink, a day passing in ten minutes. Run again, it reuses all of them."""
    if serve:
        _need_free_port(host, port, f"make run PORT={port + 1} (meldpunt demo --port {port + 1})")
    from meldpunt.config import get_settings
    from meldpunt.demo import KEYS_FILE, load_demo

    samples = Path(meldpunt.__file__).parent / "samples"
    files = sorted(samples.glob("*.jpg"))
    options = hash_options(exact=False, dihedral=False, exif=True)
    results = list(hash_many(files, options, 1))
    print_hashes(results, "meldpunt: bundled benign sample photos", samples)
    data_dir = Path(get_settings().data_dir)
    demo = load_demo(results, data_dir)
    url = f"http://{host}:{port}"
    kept = data_dir / KEYS_FILE
    made = "made now" if demo.new_keys else "made by an earlier run"
    print(f"""
Demo set '{demo.set_name}' holds the {len(results)} benign photos above;
they stand in for known material.
Demo platform '{demo.org_name}', API key:

    {demo.key}

Service:      {url}
API docs:     {url}/docs
Health:       {url}/healthz
Admin pages:  {url}/ui/
              sign in with the demo hotline's admin key:

    {demo.admin_key}

Both keys were {made}; the next run shows them again from
{kept} (readable by you only).

Check a hash (it matches the first photo above):

    curl -s -X POST {url}/v1/check \\
      -H 'Authorization: Bearer {demo.key}' \\
      -H 'Content-Type: application/json' \\
      -d '{{"items": [{{"signals": [{{"type": "pdq", "value":
        "{demo.example_pdq}"}}]}}]}}'

Check a file:

    curl -s -X POST {url}/v1/check \\
      -H 'Authorization: Bearer {demo.key}' \\
      -F file=@{files[0]}
""")
    if not serve:
        return
    if not sim:
        serve_command(host=host, port=port, workers=1)
        return
    from meldpunt.demo import start_simulation

    running = start_simulation(data_dir, speed=speed)
    internet = running.live.sim.internet
    minutes = 24 * 60 / speed
    print(f"""Simulated internet: {len(internet.hosters)} hosters on 127.0.0.2... port \
{internet.port}, notices to a mail sink on port {running.live.sim.sink.port}.
Time runs {speed:g} times as fast: a day passes in {minutes:.0f} minutes.
Reports arrive by themselves; pictures the registry knows are fetched, recognised,
noticed and re-checked until their hosters take them down; new ones wait for you
in the analysts' queue. Watch them at {url}/ui/
A simulated authority orders the hosters that ignore notices to remove what was escalated,
within an hour, with penalty payments and a fine: {url}/ui/authority, public at {url}/decisions
Per hoster, how much was notified and how fast it came down: {url}/monitor (no sign-in)
""")
    try:
        serve_command(host=host, port=port, workers=1)
    finally:
        running.stop()


def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Processes (each holds the index).")] = 1,
) -> None:
    """Run the hash check service (API, docs at /docs, metrics at /metrics)."""
    _need_free_port(host, port, f"meldpunt serve --port {port + 1}")
    import uvicorn

    from meldpunt.config import get_settings
    from meldpunt.store import init_db

    init_db()
    uvicorn.run(
        "meldpunt.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=get_settings().log_level.lower(),
    )


def worker_command(
    poll_seconds: Annotated[float, typer.Option(min=0.1, help="Seconds between rounds.")] = 5.0,
    once: Annotated[bool, typer.Option(help="Run what is due now, then stop.")] = False,
    batch: Annotated[
        int, typer.Option(min=1, max=10_000, help="Rows a step claims at once (its lease).")
    ] = 50,
    clock_speed: Annotated[
        float | None,
        typer.Option(
            min=1.0,
            help="Run on a fast clock: simulated seconds a real second "
            "(simulations and tests; leases and timeouts shrink alike).",
        ),
    ] = None,
    clock_origin: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"],
            help="With --clock-speed: the moment (with its UTC offset) from which the "
            "fast clock runs; workers given the same one share one clock.",
        ),
    ] = None,
) -> None:
    """Run due work (the hotline's fetches, notices and re-checks; re-checks of hits' public
    URLs) in this process, beside or instead of the worker thread of `meldpunt serve`."""
    import threading

    from meldpunt.reports.context import HotlineContext
    from meldpunt.store import get_engine, init_db, make_sessionmaker
    from meldpunt.worker import run_once, run_worker

    if clock_speed is not None:
        from meldpunt import clock

        origin = clock_origin or clock.now()
        clock.set_clock(clock.ScaledClock.from_origin(clock_speed, origin))
    init_db()
    context = HotlineContext(make_sessionmaker(get_engine()))
    if once:
        print(f"ran {run_once(context, limit=batch)} piece(s) of work")
        return
    stop = threading.Event()
    try:
        run_worker(context, poll_seconds=poll_seconds, stop_event=stop, limit=batch)
    except KeyboardInterrupt:
        stop.set()
