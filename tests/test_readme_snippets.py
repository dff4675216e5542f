"""Every Python snippet of the README and the guides runs as pasted, in a fresh interpreter.

The logging recipes are also checked for what they deliver
(``test_readme_logging_recipes.py``); here each block must simply run, exit
0, and write nothing to stderr. The Django guide's two snippets are the
example project's own code, checked verbatim by ``test_django_project.py``
and run there under Django's test runner.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GUIDES = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "django.md")


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.DOTALL)


SNIPPETS = [
    (f"{path.relative_to(ROOT)}#{index}", block)
    for path in (README, *GUIDES)
    for index, block in enumerate(python_blocks(path))
]


def test_the_readme_has_python_snippets_and_the_first_is_the_quick_start() -> None:
    blocks = python_blocks(README)
    assert len(blocks) >= 3
    assert "send_parallel" in blocks[0]


@pytest.mark.parametrize(("where", "block"), SNIPPETS, ids=[where for where, _ in SNIPPETS])
def test_each_python_snippet_runs_as_pasted(where: str, block: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", block],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, f"{where} failed:\n{block}\n{done.stderr}"
    assert done.stderr == "", done.stderr
