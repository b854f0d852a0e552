"""What the README and docs/ show a reader works: every `mnist-cnn` command parses with the
flags it shows, and every relative link leads to a file that is there."""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from mnist_cnn import cli

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def commands(page: Path) -> list[str]:
    """Each `mnist-cnn ...` line of the page's shell blocks, without comments and redirections."""
    found = []
    for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", page.read_text(), re.S):
        for line in block.splitlines():
            line = line.strip().removeprefix("$ ")
            if not line.startswith("mnist-cnn ") or "[" in line or "..." in line:
                continue  # a synopsis (`[--db PATH]`, `ID ...`), not a command to run
            line = re.split(r"\s#\s|\s#$|\s[>|]\s", line)[0]
            found.append(line.strip())
    return found


SHOWN = [(page.name, line) for page in PAGES for line in commands(page)]


def test_the_pages_show_commands():
    assert len(SHOWN) >= 30
    assert {"README.md", "reading.md", "commands.md"} <= {page for page, _ in SHOWN}


@pytest.mark.parametrize(("page", "line"), SHOWN, ids=[f"{p}: {c}"[:90] for p, c in SHOWN])
def test_every_command_shown_parses(page, line):
    try:
        cli.parser().parse_args(shlex.split(line)[1:])
    except (SystemExit, argparse.ArgumentError) as err:
        pytest.fail(f"{page}: `{line}` does not parse ({err})")


LINKS = [
    (page, target)
    for page in PAGES
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text())
    if not re.match(r"[a-z]+:", target) and not target.startswith("#")
]


@pytest.mark.parametrize(("page", "target"), LINKS, ids=[f"{p.name}->{t}" for p, t in LINKS])
def test_every_relative_link_resolves(page, target):
    path = target.split("#")[0]
    assert (page.parent / path).exists(), f"{page.name} links to {target}, which is not there"


TEXT = {page: page.read_text() for page in PAGES}
SCRIPTS = sorted(
    {
        (page.name, match.group(1), match.group(2))
        for page, text in TEXT.items()
        for match in re.finditer(r"python (benchmarks/[a-z_]+\.py)([^`|\n#]*)", text)
    }
)


@pytest.mark.parametrize(
    ("page", "script", "args"), SCRIPTS, ids=[f"{p}: {s}" for p, s, _ in SCRIPTS]
)
def test_every_benchmark_shown_is_there_and_takes_its_flags(page, script, args):
    source = ROOT / script
    assert source.is_file(), f"{page} shows {script}, which is not there"
    for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", args):
        assert f'"{flag}"' in source.read_text(), f"{page}: {script} takes no {flag}"


def test_every_make_target_shown_is_in_the_makefile():
    makefile = (ROOT / "Makefile").read_text()
    code = r"(?:`|^)make ([a-z][a-z-]*)"  # in `code` or at a shell line's start, not prose
    shown = {t for text in TEXT.values() for t in re.findall(code, text, re.M)}
    assert {"train", "test"} <= shown
    missing = [t for t in shown if not re.search(rf"^{re.escape(t)}:", makefile, re.M)]
    assert not missing, f"make targets shown but not in the Makefile: {missing}"
