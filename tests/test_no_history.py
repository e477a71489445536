"""The tree's prose states the current truth: no issue, finding or round numbers, no commit hashes, and no
dates in the Markdown docs. Git keeps the history; CHANGELOG.md keeps what users see change.

Exceptions: CHANGELOG.md (its releases may carry dates), sha256 digests (a fixture's expected hash may
follow any word), and ISO date-times in Markdown (a value of a date-time type in an example response).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TEXT_SUFFIXES = {".py", ".md", ".R", ".toml", ".yml", ".sh", ".txt", ".html", ".js", ".css"}
TEXT_NAMES = {"Makefile", "Dockerfile"}
EXEMPT = {"CHANGELOG.md"}

ORDINALS = "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth"
HISTORY = re.compile(
    rf"\b(issue \d+|finding \d+|round \d+|({ORDINALS}) round|commit [0-9a-f]{{7,40}}\b)", re.IGNORECASE
)
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b(?!T\d)")
SHA256 = re.compile(r"\b[0-9a-fA-F]{64}\b")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout
    paths = (Path(name) for name in listed.split("\0") if name)
    return [
        path
        for path in paths
        if (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES)
        and path.name not in EXEMPT
        and (ROOT / path).is_file()  # a file deleted in the working tree is still listed until committed
    ]


def history_in(path: Path, text: str) -> list[str]:
    """`path:line: match` for every history marker in `text`."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = SHA256.sub("<sha256>", line)
        matches = [m.group(0) for m in HISTORY.finditer(line)]
        if path.suffix == ".md":
            matches += [m.group(0) for m in DATE.finditer(line)]
        found += [f"{path}:{number}: {match}" for match in matches]
    return found


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_no_history_in_the_tree() -> None:
    found = []
    for path in tracked_text_files():
        found += history_in(path, (ROOT / path).read_text(encoding="utf-8", errors="replace"))
    assert not found, "history in prose; state the current truth instead:\n" + "\n".join(found)


# The planted examples are built from parts, so that this file does not carry them itself.
PLANTED = [
    ("a.py", "# See " + "issue" + " 12 for why."),
    ("a.py", '"""Fixed in the third' + ' round."""'),
    ("a.md", "Measured in round" + " 4."),
    ("a.yml", "# " + "finding" + " 9: keep the volume"),
    ("a.sh", "# since commit" + " abc1234"),
    ("a.md", "Measured on 2026" + "-12-01."),
]
ALLOWED = [
    ("a.py", "The first boosting iteration configures the booster."),
    ("a.py", "expected = 'commit " + "ab" * 32 + "'  # a sha256 fixture"),
    ("a.py", "created = date.fromisoformat('2026" + "-12-01')  # dates are history only in the docs"),
    ("a.md", '{"created_at": "2026' + '-12-01T10:00:00Z"}'),
    ("a.md", "Rounded to 3 digits, every round trip counted."),
]


@pytest.mark.parametrize(("name", "line"), PLANTED)
def test_a_planted_marker_is_found(name: str, line: str) -> None:
    assert history_in(Path(name), line)


@pytest.mark.parametrize(("name", "line"), ALLOWED)
def test_the_exceptions_pass(name: str, line: str) -> None:
    assert history_in(Path(name), line) == []
