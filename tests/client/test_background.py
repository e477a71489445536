"""`background=` in the client: "sample:N" is a query parameter; a path, bytes or a DataFrame is a second
file part named `background`, sent beside `file` (a path streamed from its file, a DataFrame as Parquet)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fitexplain_client.cli import app
from fitexplain_client.client import requests_for
from fitexplain_client.transport import BaseTransport, RetryPolicy

DATA = pd.DataFrame({"a": [1.0, 2.0, 3.0], "target": [0, 1, 0]})


def parts(request: object) -> dict[str, tuple[str, bytes, str]]:
    """The multipart files one attempt of the request sends: part name -> (file name, bytes, type)."""
    transport = BaseTransport("http://fitexplain.invalid", None, 1.0, RetryPolicy())
    with transport.opened(request) as files:  # type: ignore[arg-type]
        assert files is not None
        return {name: (sent[0], sent[1].read(), sent[2]) for name, sent in files.items()}


def test_sample_n_stays_a_query_parameter() -> None:
    request = requests_for.submit("mlregression", DATA, None, {"background": "sample:50", "seed": 7})
    assert request.params == {"background": "sample:50", "seed": "7"}
    assert request.background is None and set(parts(request)) == {"file"}
    request = requests_for.predict("3f2c81", DATA.drop(columns="target"), {"background": "sample:5"})
    assert request.params == {"background": "sample:5"} and request.background is None


def test_a_path_bytes_or_a_dataframe_is_the_background_part(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes(b"a\n1.5\n2.5\n")
    request = requests_for.submit("mlregression", DATA, None, {"background": path, "seed": 7})
    assert request.params == {"seed": "7"}
    sent = parts(request)
    assert set(sent) == {"file", "background"}
    assert sent["background"] == ("rows.csv", b"a\n1.5\n2.5\n", "text/csv")
    assert requests_for.submit("mlregression", DATA, None, {"background": str(path)}).background is not None

    frame = pd.DataFrame({"a": [0.5, 4.0]})
    request = requests_for.predict("3f2c81", DATA.drop(columns="target"), {"background": frame})
    name, body, kind = parts(request)["background"]
    assert (name, kind) == ("data.parquet", "application/vnd.apache.parquet")
    assert pq.read_table(io.BytesIO(body)).to_pandas().equals(frame)
    assert "background" not in (request.params or {})
    assert (
        parts(requests_for.predict("3f2c81", b"a\n1\n", {"background": b"a\n2\n"}))["background"][1]
        == b"a\n2\n"
    )


def test_a_background_that_is_neither_a_sample_nor_a_file_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="background='smaple:5' is neither sample:N nor a file"):
        requests_for.submit("mlregression", DATA, None, {"background": "smaple:5"})


@pytest.mark.parametrize("command", ["submit", "predict"])
def test_the_commands_take_a_background(command: str) -> None:
    shown = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "--background" in shown.output
