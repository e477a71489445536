"""The `fitexplain` command. The user's subcommands live here; a server installation adds its own
(serve, api, worker, migrate, create-token, revoke-tokens) through the `fitexplain.commands` entry-point
group, so a laptop with only the client gets these and a server gets all.

Exit codes: 0 done, 1 the job failed (or the service could not be reached), 2 bad usage or a 4xx answer.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from fitexplain_client import config
from fitexplain_client.binary import FORMATS, check_format
from fitexplain_client.client import Client
from fitexplain_client.errors import APIError, FitexplainError, JobFailedError
from fitexplain_client.result import Result

PLUGIN_GROUP = "fitexplain.commands"

app = typer.Typer(
    help="fitexplain: fit models on CSV files and explain them, as a job service.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


class Endpoint(StrEnum):
    mlclassification = "mlclassification"
    mlregression = "mlregression"
    gbdtclassification = "gbdtclassification"
    gbdtregression = "gbdtregression"


class PlotKind(StrEnum):
    importance = "importance"
    shap_summary = "shap-summary"
    shap_beeswarm = "shap-beeswarm"
    intervals = "intervals"


UrlOption = Annotated[
    str | None, typer.Option("--url", help="service URL (default: FITEXPLAIN_URL, then `fitexplain login`)")
]
TokenOption = Annotated[
    str | None, typer.Option("--token", help="API token (default: FITEXPLAIN_TOKEN, then `fitexplain login`)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON (for scripts)")]


# ----------------------------------------------------------------------------- errors and exit codes


@contextmanager
def exit_codes() -> Iterator[None]:
    """Turn the client's errors into a message on stderr and the documented exit code."""
    try:
        yield
    except JobFailedError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except APIError as exc:
        where = f" (column {exc.column!r})" if exc.column else ""
        err.print(f"[red]{exc}{where}[/red]")
        raise typer.Exit(2 if 400 <= exc.status_code < 500 else 1) from exc
    except (FitexplainError, httpx.HTTPError, OSError, ValueError) as exc:
        err.print(f"[red]{type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(2 if isinstance(exc, ValueError | FileNotFoundError) else 1) from exc


def parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{pair!r}: expected NAME=VALUE", param_hint="-p/--param")
        params[name.strip()] = value.strip()
    return params


def default_kind(result: Result) -> PlotKind:
    if result.permutation is not None:
        return PlotKind.importance
    if result.shap is not None:
        return PlotKind.shap_summary
    if result.pi_lower is not None:
        return PlotKind.intervals
    raise ValueError("nothing to plot: the result has no explanation and no prediction intervals")


def save_plot(result: Result, kind: PlotKind | None, path: Path, class_label: str | None = None) -> PlotKind:
    chosen = kind or default_kind(result)
    draw: dict[PlotKind, Callable[[], Any]] = {
        PlotKind.importance: lambda: result.plot_importance(),
        PlotKind.shap_summary: lambda: result.plot_shap_summary(class_label=class_label),
        PlotKind.shap_beeswarm: lambda: result.plot_shap_beeswarm(class_label=class_label),
        PlotKind.intervals: lambda: result.plot_intervals(),
    }
    draw[chosen]().savefig(path, dpi=100)
    return chosen


def summary(result: Result) -> str:
    if result.task == "regression":
        score = result.metrics
        line = f"regression: R² {score.get('R² Score', float('nan')):.3f}, RMSE "
        line += f"{score.get('RMSE (Root Mean Squared Error)', float('nan')):.3f}"
        if result.pi_coverage is not None:
            line += f", interval coverage {result.pi_coverage:.1f} %"
    else:
        line = f"classification: accuracy {result.metrics['accuracy']:.3f}"
    methods = ", ".join(item["method"] for item in result.explanations)
    return f"{line} on {len(result.y_pred)} test rows" + (f"; explained by {methods}" if methods else "")


def write_json(body: object, path: Path | None) -> None:
    text = json.dumps(body)
    if path is None:
        sys.stdout.write(text + "\n")
    else:
        path.write_text(text)


# ----------------------------------------------------------------------------- commands


@app.command()
def login(
    url: Annotated[str, typer.Option("--url", prompt="Service URL", help="e.g. http://127.0.0.1:8000")],
    token: Annotated[str, typer.Option("--token", prompt="Token", hide_input=True, help="fx_... token")],
) -> None:
    """Check a token against the service and store both (mode 600) for later commands and Client()."""
    with exit_codes(), Client(url, token) as client:
        client.jobs(limit=1)  # 401 if the token is wrong
        path = config.write_config_file(url, token)
    err.print(f"[green]logged in to {url}[/green]; stored in {path}")


@app.command()
def submit(
    data: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the CSV file")],
    endpoint: Annotated[Endpoint, typer.Argument(help="which model family")],
    param: Annotated[
        list[str] | None,
        typer.Option("-p", "--param", help="NAME=VALUE, repeatable (e.g. -p interpretability=shap)"),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait for the result, with a progress bar")] = False,
    timeout: Annotated[float | None, typer.Option(help="give up waiting after this many seconds")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", "-o", help="write the result JSON here")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="write a plot of the result here (PNG)")] = None,
    kind: Annotated[PlotKind | None, typer.Option(help="plot kind (default: from the result)")] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Upload DATA to ENDPOINT; with --wait, follow the job and save or print its result."""
    params = parse_params(param or [])
    if (out_path or plot) and not wait:
        raise typer.BadParameter("--out and --plot need --wait", param_hint="--wait")
    with exit_codes(), Client(url, token) as client:
        job = client.submit(endpoint.value, data, **params)
        if not wait:
            if as_json:
                write_json(job.state.raw, None)
            else:
                out.print(job.id)
            return
        if not as_json:
            err.print(f"job {job.id} submitted")
        result = job.wait(timeout=timeout, progress=not as_json)
        if out_path:
            write_json(result.json, out_path)
        if plot:
            chosen = save_plot(result, kind, plot)
            if not as_json:
                err.print(f"{chosen.value} plot written to {plot}")
        if as_json:
            if out_path is None:
                write_json(result.json, None)
            else:
                write_json({"id": job.id, "status": job.state.status, "result": str(out_path)}, None)
        else:
            out.print(summary(result))


@app.command()
def jobs(
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    status: Annotated[
        str | None, typer.Option(help="queued, running, succeeded, failed or cancelled")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Your jobs, newest first."""
    with exit_codes(), Client(url, token) as client:
        found = client.jobs(limit=limit, status=status)
    if as_json:
        write_json([job.state.raw for job in found], None)
        return
    table = Table("id", "endpoint", "status", "progress", "created")
    for job in found:
        raw = job.state.raw
        progress = f"{job.state.progress:.0%} {job.state.progress_message}".strip()
        table.add_row(job.id, raw.get("endpoint", ""), job.state.status, progress, raw.get("created_at", ""))
    out.print(table)


@app.command()
def status(
    job_id: Annotated[str, typer.Argument(help="the job's id")],
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """A job's status, progress and error."""
    with exit_codes(), Client(url, token) as client:
        state = client.job(job_id).state
    if as_json:
        write_json(state.raw, None)
        return
    line = f"{state.id} {state.status} {state.progress:.0%}"
    line += f" {state.progress_message}" if state.progress_message else ""
    if state.error:
        line += f" ({state.error.get('code')}: {state.error.get('message')})"
    out.print(line)


@app.command()
def result(
    job_id: Annotated[str, typer.Argument(help="the job's id")],
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="write the JSON here, not stdout")
    ] = None,
    result_format: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="json, or a binary form written to --out: arrow, arrow-file, parquet, npz"
        ),
    ] = "json",
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """A succeeded job's result JSON (exit 1 if the job failed, 2 if it is not finished)."""
    if result_format not in FORMATS:
        choices = ", ".join(FORMATS)
        raise typer.BadParameter(f"{result_format!r} is not one of {choices}", param_hint="--format")
    if result_format != "json" and out_path is None:
        raise typer.BadParameter(f"--format {result_format} is binary: give --out FILE", param_hint="--out")
    with exit_codes(), Client(url, token) as client:
        if result_format != "json":
            client.job(job_id).download(check_format(result_format), out_path)
            return
        found = client.job(job_id).result()
    write_json(found.json, out_path)


@app.command()
def cancel(
    job_id: Annotated[str, typer.Argument(help="the job's id")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Cancel a job that has not finished."""
    with exit_codes(), Client(url, token) as client:
        state = client.job(job_id).cancel()
    out.print(f"{state.id} {state.status}")


@app.command()
def plot(
    result_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a result JSON file")],
    kind: Annotated[PlotKind, typer.Option(help="what to draw")] = PlotKind.importance,
    output: Annotated[Path, typer.Option("--output", "-o", help="the PNG (or PDF, SVG) to write")] = Path(
        "plot.png"
    ),
    class_label: Annotated[str | None, typer.Option(help="SHAP plots: which class")] = None,
) -> None:
    """Draw a saved result: importance, shap-summary, shap-beeswarm or intervals."""
    with exit_codes():
        found = Result(json.loads(result_file.read_text()))
        save_plot(found, kind, output, class_label)
    err.print(f"{kind.value} plot written to {output}")


# ----------------------------------------------------------------------------- plugins


def command_name(info: Any) -> str:
    name: str = info.name or info.callback.__name__.lower().replace("_", "-")
    return name


def add_plugin(target: typer.Typer, plugin: Any) -> None:
    """Add a plugin's commands: a typer app's commands and groups, or call `plugin(target)`."""
    if isinstance(plugin, typer.Typer):
        taken = {command_name(info) for info in target.registered_commands}
        target.registered_commands.extend(
            info for info in plugin.registered_commands if command_name(info) not in taken
        )
        target.registered_groups.extend(plugin.registered_groups)
    else:
        plugin(target)


def load_plugins(target: typer.Typer) -> None:
    """Commands that other installed packages (the fitexplain server) declare under PLUGIN_GROUP."""
    for entry_point in entry_points(group=PLUGIN_GROUP):
        try:
            add_plugin(target, entry_point.load())
        except Exception as exc:  # a broken plugin must not take the user's commands down with it
            err.print(f"[yellow]fitexplain: skipping the {entry_point.name!r} commands: {exc}[/yellow]")


def main() -> None:
    load_plugins(app)
    app()
