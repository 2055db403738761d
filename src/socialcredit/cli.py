"""The ``socialcredit`` command line: run, check and schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import SocialCreditError

SET_HELP = "Override a scenario field by dotted path, e.g. --set coupling.kappa=0.3 (repeatable)."


def _console():
    from rich.console import Console

    return Console(stderr=False, highlight=False)


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="socialcredit")
def main() -> None:
    """socialcredit: a laboratory for social credit systems over synthetic citizens."""


@main.command()
@click.argument("scenario_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seed", type=int, default=None, help="Override the scenario's seed.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder to write (default: runs/<scenario name>).")
@click.option("--force", is_flag=True, help="Replace an existing run folder.")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@click.option("--max-memory", type=float, default=None, metavar="GIB",
              help="Memory limit for the pre-run estimate (default: memory available).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run(scenario_file: Path, seed: int | None, out: Path | None, force: bool, overrides: tuple[str, ...],
        max_memory: float | None, quiet: bool) -> None:
    """Run SCENARIO_FILE and write its run folder."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .api import run as run_scenario
    from .scenario import load_scenario

    try:
        scenario = load_scenario(scenario_file, list(overrides))
        out = out or Path("runs") / scenario.name
        limit = max_memory * 2**30 if max_memory is not None else None
        console = _console()
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("day {task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, disable=quiet, transient=False) as bar:
            task = bar.add_task(f"{scenario.name} ({scenario.population.size:,} citizens)", total=scenario.days)
            result = run_scenario(scenario, seed=seed, out=out, force=force, max_memory=limit,
                                  progress=lambda day, days: bar.update(task, completed=day))
    except SocialCreditError as exc:
        _fail(exc)
        return
    _print_summary(console, result)


def _print_summary(console, result) -> None:
    from rich.table import Table

    sc = result.engine.scenario
    last = result.metrics[-1] if result.metrics else {}
    n = result.engine.population.size
    table = Table(title=f"{sc.name}: after {sc.days} days", show_header=True)
    table.add_column("measure")
    table.add_column("citizens", justify="right")
    table.add_column("share", justify="right")

    def row(label: str, value: int | None) -> None:
        value = int(value or 0)
        table.add_row(label, f"{value:,}", f"{value / n:.1%}")

    for g in sc.grade_names:
        row(f"grade {g}", last.get(f"grade_{g}"))
    row("red list", last.get("redlisted"))
    row("black list", last.get("blacklisted"))
    row("  by record", last.get("black_by_record"))
    row("  by error", last.get("black_by_error"))
    row("  by association", last.get("black_by_association"))
    for nl in sc.lists.named:
        row(f"list {nl.name}", last.get(f"list_{nl.name}"))
    console.print(table)
    ties = result.engine.ties.n_ties
    cut = int(last.get("ties_cut_cum", 0))
    console.print(f"ties cut: {cut:,} of {ties:,} ({cut / max(ties, 1):.1%})")
    timings = result.engine.timings
    console.print(f"time: build {timings['build']:.1f}s, acts {timings['acts']:.1f}s, scoring {timings['scoring']:.1f}s")
    console.print(f"run folder: {result.path}")
    console.print(f"query it:   duckdb -c \"select * from '{result.path}/metrics.parquet'\"")


@main.command()
@click.argument("scenario_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
def check(scenario_file: Path, overrides: tuple[str, ...]) -> None:
    """Validate SCENARIO_FILE without running it; print its size and memory estimate."""
    from .resources import estimate_memory, expected_records, expected_ties
    from .scenario import load_scenario

    try:
        scenario = load_scenario(scenario_file, list(overrides))
    except SocialCreditError as exc:
        _fail(exc)
        return
    est = estimate_memory(scenario)
    click.echo(f"{scenario_file}: valid scenario '{scenario.name}'")
    click.echo(f"  {scenario.population.size:,} citizens, {len(scenario.population.groups)} groups, "
               f"{scenario.days} days, scoring every {scenario.scoring.every_days} days")
    click.echo(f"  {len(scenario.agencies)} agencies, {len(scenario.record_types)} record types, "
               f"{len(scenario.effects)} effects, {len(scenario.schemes)} side schemes")
    click.echo(f"  about {expected_ties(scenario):,.0f} ties and {expected_records(scenario):,.0f} records; "
               f"memory estimate {est['total'] / 2**30:.2f} GiB")


@main.command()
@click.option("--indent", type=int, default=2, help="JSON indentation.")
def schema(indent: int) -> None:
    """Print the JSON schema of a scenario file."""
    from .scenario import scenario_schema

    click.echo(json.dumps(scenario_schema(), indent=indent))


if __name__ == "__main__":  # pragma: no cover
    main()
