"""The `fitexplain` command. The user's subcommands live here; a server installation adds its own
(serve, api, worker, migrate, create-token, revoke-tokens) through the `fitexplain.commands` entry-point
group, so a laptop with only the client gets these and a server gets all.

A job id may be any unique prefix (6 characters or more) of one of your jobs' ids. Exit codes: the table
in `exit_codes` (0 ok, 1 job failed or cancelled, 2 bad usage or a rejected request, 3 job not finished,
4 not found, 5 service unreachable or unavailable, 6 authentication); an error is one line on stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fitexplain_client import config
from fitexplain_client.binary import FORMATS, check_format
from fitexplain_client.client import Client
from fitexplain_client.endpoints import parameters
from fitexplain_client.errors import ConflictError
from fitexplain_client.exit_codes import ExitCode, JobNotFinished, exit_code, one_line
from fitexplain_client.jobs import MODEL_CONVERSION_TIMEOUT
from fitexplain_client.models import JobState
from fitexplain_client.plot_kinds import PlotKind, chosen_kind, save_plot

PLUGIN_GROUP = "fitexplain.commands"
# click's UsageError (bad options, arguments, values), as the installed typer raises it: typer vendors
# click in recent releases and uses click itself in older ones; its BadParameter derives from it in both.
UsageError: type[Exception] = typer.BadParameter.__mro__[1]

app = typer.Typer(
    help="fitexplain: fit models on tables and explain them, as a job service.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


class Endpoint(StrEnum):
    mlclassification = "mlclassification"
    mlregression = "mlregression"
    gbdtclassification = "gbdtclassification"
    gbdtregression = "gbdtregression"


UrlOption = Annotated[
    str | None, typer.Option("--url", help="service URL (default: FITEXPLAIN_URL, then `fitexplain login`)")
]
TokenOption = Annotated[
    str | None, typer.Option("--token", help="API token (default: FITEXPLAIN_TOKEN, then `fitexplain login`)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON (for scripts)")]
JobId = Annotated[str, typer.Argument(help="the job's id, or a unique prefix of it (6+ characters)")]
BackgroundOption = Annotated[
    str | None,
    typer.Option(
        "--background",
        help="SHAP's background: sample:N, or a file of the training features (CSV, Parquet or Arrow)",
    ),
]


# ----------------------------------------------------------------------------- errors and exit codes


def fail(message: str, code: ExitCode) -> typer.Exit:
    err.print(f"fitexplain: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(int(code))


@contextmanager
def exit_codes() -> Iterator[None]:
    """Turn the client's errors into one line on stderr and the documented exit code."""
    try:
        yield
    except (typer.Exit, UsageError):
        raise
    except ConflictError as exc:
        if exc.code == "job_finished":
            hint = "nothing to cancel; `fitexplain delete` deletes a finished job"
            raise fail(f"{one_line(exc)} ({hint})", ExitCode.USAGE) from exc
        raise fail(one_line(exc), exit_code(exc)) from exc
    except Exception as exc:
        if isinstance(exc, LookupError | AttributeError | NameError | AssertionError):
            raise  # a bug: its traceback helps more than a line
        raise fail(one_line(exc), exit_code(exc)) from exc


def parse_params(pairs: list[str], endpoint: str) -> dict[str, str]:
    """`-p NAME=VALUE` pairs, each NAME one of the endpoint's parameters."""
    known = parameters(endpoint)
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r}: expected NAME=VALUE", param_hint="-p/--param")
        if name == "training_index":
            raise typer.BadParameter(f"{pair!r}: use --training-index", param_hint="-p/--param")
        if name == "wait":
            raise typer.BadParameter(f"{pair!r}: use --wait", param_hint="-p/--param")
        if name not in known:
            raise typer.BadParameter(
                f"{name!r} is not a parameter of {endpoint}; one of {', '.join(known)}",
                param_hint="-p/--param",
            )
        params[name] = value.strip()
    return params


def with_training_index(data: Path, column: str | None) -> Any:
    """The file itself, or, when its training-row column has another name than `training_index`, the
    table read with pandas with that column renamed (the service reads the column by that name)."""
    if column is None or column == "training_index":
        return data
    try:
        import pandas as pd
    except ImportError as exc:
        raise typer.BadParameter(
            "a --training-index other than 'training_index' needs pandas "
            "(pip install 'fitexplain-client[pandas]'), or rename the column in the file",
            param_hint="--training-index",
        ) from exc
    suffix = "".join(data.suffixes[-2:]).lower()
    frame = pd.read_parquet(data) if suffix.endswith((".parquet", ".pq")) else pd.read_csv(data)
    if column not in frame.columns:
        raise typer.BadParameter(f"{column!r} is not a column of {data.name}", param_hint="--training-index")
    return frame.rename(columns={column: "training_index"})


def summary(result: Any) -> str:
    if result.task == "regression":
        score = result.metrics
        line = f"regression: R² {score.get('R² Score', float('nan')):.3f}, RMSE "
        line += f"{score.get('RMSE (Root Mean Squared Error)', float('nan')):.3f}"
        if result.pi_coverage is not None:
            line += f", interval coverage {result.pi_coverage:.1f} %"
    else:
        line = f"classification: accuracy {result.metrics['accuracy']:.3f}"
    methods = ", ".join(item.method for item in result.explanations)
    return f"{line} on {len(result.y_pred)} test rows" + (f"; explained by {methods}" if methods else "")


def write_json(body: object, path: Path | None) -> None:
    text = json.dumps(body)
    if path is None:
        sys.stdout.write(text + "\n")
    else:
        path.write_text(text)


def duration(state: JobState) -> str:
    seconds = state.duration_seconds
    if seconds is None and state.started_at is not None and state.finished_at is not None:
        seconds = (state.finished_at - state.started_at).total_seconds()
    if seconds is None:
        return ""
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60)} s"


def score(state: JobState) -> str:
    if state.score is None or state.score.value is None:
        return ""
    return f"{state.score.name} {state.score.value:.3f}"


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
    data: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="the table: CSV, gzip CSV, Parquet or Arrow")
    ],
    endpoint: Annotated[Endpoint, typer.Argument(help="which model family")],
    target: Annotated[
        str | None, typer.Option("--target", help="the target column (default: target)")
    ] = None,
    id_column: Annotated[
        str | None, typer.Option("--id-column", help="a column carried into the result as test_ids")
    ] = None,
    training_index: Annotated[
        str | None,
        typer.Option("--training-index", help="the column marking training rows 1 and test rows 0"),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("-p", "--param", help="NAME=VALUE, repeatable (e.g. -p interpretability=shap)"),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait for the result")] = False,
    timeout: Annotated[float | None, typer.Option(help="give up waiting after this many seconds")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", "-o", help="write the result JSON here")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="write a plot of the result here (PNG)")] = None,
    kind: Annotated[
        PlotKind | None,
        typer.Option(help="plot kind (default: from the --plot file's name, then the result)"),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="a progress bar (default: when stderr is a terminal)"),
    ] = None,
    background: BackgroundOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Upload DATA to ENDPOINT; with --wait, follow the job and save or print its result."""
    params = parse_params(param or [], endpoint.value)
    given = (("target", target), ("id_column", id_column), ("background", background))
    params.update({name: value for name, value in given if value})
    if (out_path or plot) and not wait:
        raise typer.BadParameter("--out and --plot need --wait", param_hint="--wait")
    with exit_codes(), Client(url, token) as client:
        job = client.submit(endpoint.value, with_training_index(data, training_index), **params)
        if not wait:
            if as_json:
                write_json(job.state.raw, None)
            else:
                out.print(job.id)
            return
        if not as_json:
            err.print(f"job {job.id} submitted")
        asked_kind = kind or (chosen_kind(None, plot, None) if plot else None)
        include = ["X_test"] if asked_kind == PlotKind.shap_beeswarm else []
        job.wait(timeout=timeout, progress=False if as_json else progress)
        result = job.result(include=include)
        if out_path:
            write_json(result.json, out_path)
        if plot:
            chosen = save_plot(result, chosen_kind(kind, plot, result), plot)
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
    """Your jobs, newest first: endpoint, model, data file, status, score and duration."""
    with exit_codes(), Client(url, token) as client:
        found = client.jobs(limit=limit, status=status)
    if as_json:
        write_json([job.state.raw for job in found], None)
        return
    table = Table("id", "endpoint", "model", "data", "status", "score", "duration", "created")
    for job in found:
        state = job.state
        shown = state.status if state.finished else f"{state.status} {state.progress:.0%}"
        created = state.created_at.strftime("%Y-%m-%d %H:%M") if state.created_at else ""
        table.add_row(
            state.id[:8], state.endpoint, state.model_label, state.data_filename or "", shown,
            score(state), duration(state), created,
        )  # fmt: skip
    out.print(table)


@app.command()
def status(
    job_id: JobId,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """A job's status, progress and error."""
    with exit_codes(), Client(url, token) as client:
        state = client.job_state(job_id)
    if as_json:
        write_json(state.raw, None)
        return
    line = f"{state.id} {state.status} {state.progress:.0%}"
    line += f" {state.progress_message}" if state.progress_message else ""
    if state.error:
        line += f" ({state.error.code}: {state.error.message})"
    out.print(line, markup=False, highlight=False)


@app.command()
def result(
    job_id: JobId,
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
    """A succeeded job's result (exit 1 if the job failed or was cancelled, 3 if it has not finished)."""
    if result_format not in FORMATS:
        choices = ", ".join(FORMATS)
        raise typer.BadParameter(f"{result_format!r} is not one of {choices}", param_hint="--format")
    if result_format != "json" and out_path is None:
        raise typer.BadParameter(f"--format {result_format} is binary: give --out FILE", param_hint="--out")
    with exit_codes(), Client(url, token) as client:
        state = client.job_state(job_id)
        if not state.finished:
            raise JobNotFinished(f"job {state.id} is {state.status} ({state.progress:.0%}): no result yet")
        state.raise_unless_succeeded()
        if result_format != "json":
            client.download(state.id, check_format(result_format), out_path)
            return
        found = client.result(state.id)
        write_json(found.json, out_path)


@app.command()
def predict(
    job_id: JobId,
    data: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="the new rows: CSV, gzip CSV, Parquet or Arrow"),
    ],
    top_n: Annotated[
        int | None, typer.Option("--top-n", help="reasons per explained row (default 3)")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="explain only the rows whose score reaches it")
    ] = None,
    below: Annotated[
        bool, typer.Option("--below", help="explain the rows at or below the threshold")
    ] = False,
    id_column: Annotated[
        str | None, typer.Option("--id-column", help="a column carried into the result as ids")
    ] = None,
    shap: Annotated[bool, typer.Option("--shap/--no-shap", help="SHAP values and reasons")] = True,
    strict: Annotated[
        bool, typer.Option("--strict", help="refuse categories never seen in training")
    ] = False,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="write the result here: JSON, or .parquet / .arrow for those forms"),
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="give up waiting after this many seconds")] = None,
    background: BackgroundOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Score (and explain) the rows of DATA with the model job JOB_ID kept; wait, then save or show them."""
    params: dict[str, Any] = {
        "below": below or None,
        "id_column": id_column,
        "strict": strict or None,
        "background": background,
    }
    with exit_codes(), Client(url, token) as client:
        job = client.predict(
            job_id,
            data,
            interpretability="shap" if shap else "none",
            top_n=top_n,
            threshold=threshold,
            **params,
        )
        if not as_json:
            err.print(f"predict job {job.id} submitted")
        found = job.wait(timeout=timeout, progress=False if as_json else None)
        binary = {".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow-file"}
        if out_path is not None and out_path.suffix.lower() in binary:
            client.download(job.id, check_format(binary[out_path.suffix.lower()]), out_path)
        elif out_path is not None or as_json:
            write_json(found.json, out_path)
        if not as_json:
            explained = len(found.explained_rows or [])
            out.print(f"{job.id}: {len(found.y_pred)} rows scored, {explained} explained", highlight=False)


@app.command()
def model(
    words: Annotated[
        list[str],
        typer.Argument(
            metavar="JOB | download JOB", help="a job's model card; `download JOB` writes its model file"
        ),
    ],
    model_format: Annotated[
        str, typer.Option("--format", "-f", help="download: native, skops, or another of the card's formats")
    ] = "native",
    out_path: Annotated[
        Path, typer.Option("--out", "-o", help="download: the file, or a directory for the server's name")
    ] = Path("."),
    timeout: Annotated[
        float,
        typer.Option(help="download: give up waiting for a format a worker writes after this many seconds"),
    ] = MODEL_CONVERSION_TIMEOUT,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """`model JOB`: a succeeded job's model card; `model download JOB --format F [--out PATH]`: its model
    file, waiting while the service writes a format made on first download (skops, onnx, mlflow, bundle)
    (exit 1 if the job failed or was cancelled, 3 if it has not finished or the file is still being written
    after `--timeout`, 2 if it has no such file)."""
    if len(words) == 2 and words[0] == "download":
        downloading, job_id = True, words[1]
    elif len(words) == 1:
        downloading, job_id = False, words[0]
    else:
        raise typer.BadParameter("give JOB, or download JOB", param_hint="JOB")
    with exit_codes(), Client(url, token) as client:
        state = client.job_state(job_id)
        if not state.finished:
            raise JobNotFinished(f"job {state.id} is {state.status} ({state.progress:.0%}): no model yet")
        state.raise_unless_succeeded()
        if downloading:
            written = client.download_model(state.id, out_path, model_format, timeout)
            out.print(str(written), markup=False, highlight=False)
            return
        card = client.model_card(state.id)
    if as_json:
        write_json(card.raw, None)
        return
    out.print(model_summary(card.raw), markup=False, highlight=False)


def model_summary(card: dict[str, Any]) -> str:
    """A model card in a few lines."""
    estimator = card["estimator"]
    target = card["target"]
    about_target = (
        f"classes {', '.join(map(str, target['classes']))}"
        if "classes" in target
        else f"{target.get('min')} to {target.get('max')}"
    )
    lines = [
        f"job       {card['job_id']} ({card['endpoint']})",
        f"estimator {estimator['name']} ({estimator['library']})",
        f"features  {', '.join(feature['name'] for feature in card['features'])}",
        f"target    {target['name']}: {about_target}",
        f"size      {card['size_bytes']:,} bytes, sha256 {card['sha256']}",
        f"formats   {', '.join(card['formats']) or 'none (not kept)'}",
    ]
    if card.get("notes"):
        lines.append(f"notes     {card['notes']}")
    return "\n".join(lines)


@app.command()
def cancel(job_id: JobId, url: UrlOption = None, token: TokenOption = None) -> None:
    """Cancel a job that has not finished; it stays listed as cancelled (exit 2 if it had finished)."""
    with exit_codes(), Client(url, token) as client:
        state = client.cancel(job_id)
    out.print(f"{state.id} {state.status}", markup=False, highlight=False)


@app.command()
def delete(job_id: JobId, url: UrlOption = None, token: TokenOption = None) -> None:
    """Delete a finished job with its result and upload; one that has not finished is cancelled (delete
    it again once it has stopped)."""
    with exit_codes(), Client(url, token) as client:
        full_id = client.job_state(job_id).id  # for the message
        cancelled = client.delete(full_id)
    shown = (
        f"{full_id} deleted"
        if cancelled is None
        else f"{full_id} {cancelled.status} (not finished: cancelled)"
    )
    out.print(shown, markup=False, highlight=False)


@app.command()
def plot(
    result_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a result JSON file")],
    kind: Annotated[
        PlotKind | None, typer.Option(help="what to draw (default: from the output's name, then the result)")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="the PNG (or PDF, SVG) to write")] = Path(
        "plot.png"
    ),
    class_label: Annotated[str | None, typer.Option(help="SHAP plots: which class")] = None,
) -> None:
    """Draw a saved result: importance, shap-summary, shap-beeswarm or intervals."""
    from fitexplain_client.result import Result

    with exit_codes():
        found = Result.from_json(json.loads(result_file.read_text()))
        chosen = save_plot(found, chosen_kind(kind, output, found), output, class_label)
    err.print(f"{chosen.value} plot written to {output}")


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


def run(args: list[str] | None = None) -> int:
    """Run the command line; its exit code. Bad usage is one line on stderr and exit 2, never a
    traceback or a box of help."""
    try:
        code = app(args=args, standalone_mode=False, prog_name="fitexplain")
    except UsageError as exc:
        context: Any = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and context is not None:
            sys.stderr.write(context.get_help() + "\n")
            return int(ExitCode.USAGE)
        where = f" {context.info_name}" if context is not None and context.parent is not None else ""
        message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]  # click's
        err.print(f"fitexplain{where}: {message}", markup=False, highlight=False, soft_wrap=True)
        return int(ExitCode.USAGE)
    except typer.Abort:
        err.print("fitexplain: aborted", markup=False)
        return 130
    return code if isinstance(code, int) else 0


def main() -> None:
    load_plugins(app)
    sys.exit(run())
