"""No source file over 500 lines: a file that grows past that has more than one job and is
split along its seams (docs/architecture.md)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 500


def test_no_python_file_is_over_500_lines() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert listed, "git listed no Python file"
    too_long = {
        name: count
        for name in listed
        if (ROOT / name).is_file()
        and (count := len((ROOT / name).read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert too_long == {}
