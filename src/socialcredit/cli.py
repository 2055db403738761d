"""The ``socialcredit`` command line: run scenarios, then explain, compare, audit, report, sweep, query, serve."""

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


def _call(fn, *args, **kwargs):
    """Call a data function; a user-facing error is printed and exits with status 2."""
    try:
        return fn(*args, **kwargs)
    except (SocialCreditError, ValueError, IndexError) as exc:
        _fail(exc)


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2))


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
    console.print(f"report:     socialcredit report {result.path}")
    console.print(f"explain:    socialcredit explain {result.path} CITIZEN")
    console.print(f"query it:   socialcredit query {result.path} \"select step, blacklisted from metrics\"")


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


RUN = click.Path(exists=True, file_okay=False, path_type=Path)


@main.command()
@click.argument("run_folder", type=RUN)
@click.argument("citizen", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the story as JSON.")
def explain(run_folder: Path, citizen: int, as_json: bool) -> None:
    """Why is CITIZEN where she is? Her story in RUN_FOLDER, in time order."""
    from .explain import explain as explain_citizen

    story = _call(explain_citizen, run_folder, citizen)
    if as_json:
        return _echo_json(story)
    _print_story(_console(), story)


def _print_story(console, story) -> None:
    from rich.table import Table

    final = story["final"]
    listed = "BLACK list" if final["blacklisted"] else ("red list" if final["redlisted"] else "no list")
    cause = f" (cause: {final['cause']})" if final["blacklisted"] else ""
    console.print(f"[bold]Citizen {story['citizen']}[/bold], group {story['group']}, "
                  f"scenario {story['scenario']} (seed {story['seed']})")
    console.print(f"Now: grade {final['grade']}, {listed}{cause}; own points {final['points']:.1f}, "
                  f"score {final['score']:.2f}")
    net = story["network"]
    console.print(f"Network: {net['degree_start']} ties at the start, {net['degree_end']} active at the end; "
                  f"pull of friends' scores S - P = {net['pull']:+.2f}")
    if net["neighbours"]:
        table = Table(title="neighbours who pulled most (kappa * w * (S_j - P_i))")
        for col in ("citizen", "kind", "grade", "score", "contribution"):
            table.add_column(col, justify="right")
        for nb in net["neighbours"]:
            table.add_row(str(nb["citizen"]), nb["kind"], nb["grade"], f"{nb['score']:.1f}",
                          f"{nb['contribution']:+.2f}")
        console.print(table)
    for ep in story["blacklistings"]:
        until = f"until day {ep['end_day']}" if ep["end_day"] is not None else "still listed"
        console.print(f"Blacklisted from day {ep['start_day']} ({until}); cause: {', '.join(ep['causes'])}")
    if story["effects"]:
        console.print("Effects: " + "; ".join(f"{e['name']} ({e['kind']}) {e['days']} days" for e in story["effects"]))
    timeline = Table(title="story")
    timeline.add_column("day", justify="right")
    timeline.add_column("what happened")
    for ev in story["timeline"]:
        timeline.add_row(str(ev["day"]), ev["event"])
    console.print(timeline)


@main.command()
@click.argument("run_a", type=RUN)
@click.argument("run_b", type=RUN)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare(run_a: Path, run_b: Path, as_json: bool) -> None:
    """Compare RUN_A with RUN_B (same city and seed, different rules)."""
    from rich.table import Table

    from .compare import compare as compare_runs

    data = _call(compare_runs, run_a, run_b)
    if as_json:
        return _echo_json(data)
    console = _console()
    for note in data["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")
    table = Table(title=f"A = {run_a}   B = {run_b}")
    for col in ("measure", "A", "B", "A - B"):
        table.add_column(col, justify="right")
    for row in data["aggregate"]:
        table.add_row(row["measure"], _fmt(row["a"]), _fmt(row["b"]), _fmt(row["difference"]))
    console.print(table)
    chill = Table(title="criticism acts (chilling effect)")
    for col in ("group", "type", "A", "B", "A - B"):
        chill.add_column(col, justify="right")
    for row in data["chilling"]:
        chill.add_row(row["group"], row["type"], str(row["acts_a"]), str(row["acts_b"]), str(row["difference"]))
    console.print(chill)
    lc = data["list_changes"]
    console.print(f"black list: {lc['black_in_a_only']} only in A, {lc['black_in_b_only']} only in B, "
                  f"{lc['black_in_both']} in both")
    console.print("sanction-days added by A: " + ", ".join(f"{r['group']} {r['added']:+,}" for r in data["sanction_days"]))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


@main.command()
@click.argument("run_folder", type=RUN)
@click.option("--baseline", type=RUN, default=None, help="A no-system run of the same city and seed.")
@click.option("--sample", type=int, default=20, show_default=True, help="False records replayed for spill-over.")
@click.option("--json", "as_json", is_flag=True, help="Print the audit as JSON.")
def audit(run_folder: Path, baseline: Path | None, sample: int, as_json: bool) -> None:
    """Audit the data platform of RUN_FOLDER and who pays for it."""
    from rich.table import Table

    from .audit import audit as audit_run

    data = _call(audit_run, run_folder, baseline=baseline, spillover_sample=sample)
    if as_json:
        return _echo_json(data)
    console = _console()
    rec, false = data["records"], data["false_records"]
    console.print(f"[bold]{data['scenario']}[/bold]: {data['citizens']:,} citizens, {data['days']} days")
    console.print(f"records held: {rec['total']:,} ({rec['per_citizen_mean']:.2f} per citizen, max "
                  f"{rec['per_citizen_max']}); false: {false['count']:,} ({false['share']:.1%}), "
                  f"{false['overturned']:,} overturned, in effect {false['mean_days_in_effect']:.0f} days on average")
    c = data["causes"]
    console.print(f"black list: {c['blacklisted']:,} = {c['record']:,} by record + {c['error']:,} by error + "
                  f"{c['association']:,} by association")
    di = Table(title=f"disparate impact (four-fifths rule, reference group {data['disparate_impact']['reference_group']})")
    for col in ("group", "citizens", "blacklisted", "rate", "impact ratio", "flag"):
        di.add_column(col, justify="right")
    for g in data["disparate_impact"]["groups"]:
        di.add_row(g["group"], f"{g['citizens']:,}", f"{g['blacklisted']:,}", f"{g['blacklist_rate']:.1%}",
                   f"{g['impact_ratio']:.2f}", "FLAGGED" if g["flagged"] else "")
    console.print(di)
    sp = data["spillover"]
    console.print(f"spill-over: {sp['sampled']} of {sp['in_effect']} false records in effect at the last step "
                  f"replayed without them: {sp['mean_grade_changes']:.2f} other citizens' grades changed on "
                  f"average (max {sp['max_grade_changes']})")
    iso = data["isolation"]
    lcc = iso["largest_component"]
    console.print(f"isolation: blacklisted lost {iso['mean_degree_loss_blacklisted']:.2f} ties on average, others "
                  f"{iso['mean_degree_loss_others']:.2f}; {iso['isolated']:,} left without any tie "
                  f"({iso['isolated_blacklisted']:,} of them blacklisted); largest component "
                  f"{lcc[0]['share']:.1%} -> {lcc[-1]['share']:.1%} of citizens")
    if data["silenced"] is None:
        console.print("silenced criticism: run no-system.toml with the same population and seed and pass --baseline")
    else:
        console.print(f"silenced criticism: {data['silenced']['total_silenced']:,} acts fewer than without the system")


@main.command()
@click.argument("run_folder", type=RUN)
@click.option("--compare", "compare_with", type=RUN, default=None, help="A second run to compare with.")
@click.option("--baseline", type=RUN, default=None, help="A no-system run of the same city and seed.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file to write (default: RUN_FOLDER/report.html).")
def report(run_folder: Path, compare_with: Path | None, baseline: Path | None, out: Path | None) -> None:
    """Write a self-contained HTML report of RUN_FOLDER."""
    from .report import write_report

    path = _call(write_report, run_folder, out=out, compare_with=compare_with, baseline=baseline)
    click.echo(f"report: {path}")


def _grid(specs: tuple[str, ...]) -> dict[str, list]:
    from .errors import ScenarioError
    from .scenario import parse_value

    grid: dict[str, list] = {}
    for spec in specs:
        path, sep, values = spec.partition("=")
        if not sep or not path.strip() or not values.strip():
            raise ScenarioError(spec, spec, "a grid axis must look like PATH=v1,v2,...", "e.g. --grid coupling.kappa=0.1,0.3,0.5")
        grid[path.strip()] = [parse_value(v.strip()) for v in values.split(",")]
    return grid


@main.command()
@click.argument("scenario_or_sweep_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--grid", "grid_specs", multiple=True, metavar="PATH=v1,v2,...", help="One axis of the grid (repeatable).")
@click.option("--replicates", type=int, default=None, help="Runs per cell (default 1, or the sweep file's).")
@click.option("--seed", type=int, default=None, help="Sweep seed (default 0, or the sweep file's).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Sweep folder (resumable).")
@click.option("--workers", type=int, default=None, help="Workers of the embedded cluster (default: all cores).")
@click.option("--scheduler", default=None, metavar="ADDRESS", help="Use an existing Dask cluster.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sweep(scenario_or_sweep_file: Path, grid_specs: tuple[str, ...], replicates: int | None, seed: int | None,
          overrides: tuple[str, ...], out: Path, workers: int | None, scheduler: str | None, quiet: bool) -> None:
    """Run a grid of rule variants with replicates on Dask; rerun to resume."""
    from . import sweep as sweeps

    try:
        grid = _grid(grid_specs)
        sets = list(overrides)
        scenario = scenario_or_sweep_file
        if scenario_or_sweep_file.suffix == ".toml" and _is_sweep_file(scenario_or_sweep_file):
            spec = sweeps.load_sweep_file(scenario_or_sweep_file)
            scenario = spec["scenario"]
            grid = {**spec["grid"], **grid}
            sets = list(spec["overrides"]) + sets
            replicates = replicates if replicates is not None else spec["replicates"]
            seed = seed if seed is not None else spec["seed"]
        table = sweeps.sweep(scenario, grid, replicates or 1, out, seed=seed or 0, workers=workers,
                             scheduler=scheduler, progress=not quiet, overrides=sets)
    except (SocialCreditError, ValueError) as exc:
        _fail(exc)
        return
    console = _console()
    sweeps.print_summary(table, console)
    console.print(f"sweep folder: {out}   (query it: socialcredit query {out} \"select * from summary\")")


def _is_sweep_file(path: Path) -> bool:
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return "grid" in data and "population" not in data  # a sweep file, not a scenario


@main.command()
@click.argument("scenario_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--param", "params", multiple=True, required=True, metavar="PATH=LO:HI", help="A parameter and its range (repeatable).")
@click.option("--method", type=click.Choice(["sobol", "morris"]), default="sobol", show_default=True)
@click.option("--samples", type=int, default=64, show_default=True, help="Base samples (sobol) or trajectories (morris).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help=SET_HELP)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder (resumable).")
@click.option("--workers", type=int, default=None, help="Workers of the embedded cluster (default: all cores).")
@click.option("--scheduler", default=None, metavar="ADDRESS", help="Use an existing Dask cluster.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sensitivity(scenario_file: Path, params: tuple[str, ...], method: str, samples: int, seed: int,
                overrides: tuple[str, ...], out: Path, workers: int | None, scheduler: str | None, quiet: bool) -> None:
    """Global sensitivity analysis (SALib) of blacklisting to the declared parameter ranges."""
    from rich.table import Table

    from .sensitivity import parse_param, sensitivity as analyse

    try:
        ranges = {}
        for spec in params:
            path, lo, hi = parse_param(spec)
            ranges[path] = (lo, hi)
        table = analyse(scenario_file, ranges, method=method, samples=samples, out=out, seed=seed, workers=workers,
                        scheduler=scheduler, progress=not quiet, overrides=list(overrides))
    except (SocialCreditError, ValueError) as exc:
        _fail(exc)
        return
    rows = table.to_pylist()
    view = Table(title=f"{method} sensitivity indices (95 % confidence)")
    for col in rows[0].keys() if rows else ():
        view.add_column(col, justify="right")
    for row in rows:
        view.add_row(*(_fmt(v) for v in row.values()))
    console = _console()
    console.print(view)
    console.print(f"indices: {out}/indices.parquet   plot: {out}/indices.svg")


@main.command()
@click.argument("folder", type=RUN)
@click.argument("sql")
@click.option("--max-rows", type=int, default=50, show_default=True, help="Rows to print.")
def query(folder: Path, sql: str, max_rows: int) -> None:
    """Run SQL (DuckDB) over a run or sweep folder; tables are named after its Parquet files."""
    from .query import format_table, query as run_query

    try:
        frame = run_query(folder, sql)
    except SocialCreditError as exc:
        _fail(exc)
        return
    except Exception as exc:  # DuckDB's own errors: show them as a usage error
        _fail(exc)
        return
    click.echo(format_table(frame, max_rows=max_rows))


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), required=False)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback makes the runs visible to the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: a free port, printed).")
@click.option("--max-population", type=click.IntRange(min=2), default=50_000, show_default=True,
              help="Largest city a what-if may run.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=2, show_default=True,
              help="What-if runs allowed to compute at once.")
@click.option("--max-memory", type=click.FloatRange(min=0, min_open=True), default=None, metavar="GIB",
              help="Memory limit for each what-if run's pre-run estimate (default: memory available).")
@click.option("--scenarios", "scenarios_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Folder of scenario files the what-if explorer offers (default: scenarios/ of "
                                 "the source checkout, else of the working directory).")
def serve(folder: Path, host: str, port: int, max_population: int, max_jobs: int, max_memory: float | None,
          scenarios_dir: Path | None) -> None:
    """Serve FOLDER (default: runs) as a local web app: runs, sweeps, what-ifs and citizens' stories."""
    from .web.app import DEFAULT_SCENARIOS, create_app
    from .web.serve import is_loopback, serve as run_server

    loopback = is_loopback(host)
    if not loopback:
        click.echo(f"warning: listening on {host}: every run, sweep and citizen story in {folder} becomes visible "
                   "to the network, and anyone who reaches it can start what-if runs", err=True)
    try:
        app = create_app(folder, max_population=max_population, max_jobs=max_jobs,
                         scenarios_dir=scenarios_dir or DEFAULT_SCENARIOS,
                         max_memory=max_memory * 2**30 if max_memory is not None else None,
                         allowed_hosts=None if loopback else ["*"])
        run_server(app, host, port, announce=lambda url: click.echo(f"Serving {folder} at {url}"))
    except OSError as exc:
        _fail(f"cannot serve {folder} on {host}:{port}: {exc.strerror or exc}; choose another --port (0: any free one)")


@main.command()
@click.option("--indent", type=int, default=2, help="JSON indentation.")
def schema(indent: int) -> None:
    """Print the JSON schema of a scenario file."""
    from .scenario import scenario_schema

    click.echo(json.dumps(scenario_schema(), indent=indent))


if __name__ == "__main__":  # pragma: no cover
    main()
