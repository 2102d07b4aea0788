"""The documentation: the guides in docs/ build as a MkDocs site with every warning an error, and README.md,
the landing page outside the site, links only to files that exist and shows only commands that parse."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

from tests.conftest import ROOT

README = ROOT / "README.md"
FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    """mkdocs.yml makes a link to a missing page or anchor, a page left out of the nav, a missing snippet
    (the README's benchmarks table) and a docstring the API reference cannot render all errors."""
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}{proc.stderr}"
    assert (tmp_path / "site" / "reference" / "index.html").is_file()


def test_every_relative_link_in_the_readme_leads_to_a_file():
    text = FENCED.sub("", README.read_text())
    targets = [target for target in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:|#", target)]
    assert targets, "README.md links to no guide"
    broken = [target for target in targets if not (ROOT / target.split("#", 1)[0]).exists()]
    assert not broken, f"README.md links to files that do not exist: {broken}"


def test_the_readmes_harness_commands_parse(capsys):
    """Every `python -m harness --...` line in the README's code blocks is one `python -m harness` accepts."""
    from harness.cli import _parser

    commands = [
        line.strip()
        for block in FENCED.findall(README.read_text())
        for line in re.sub(r"\\\n\s*", " ", block).splitlines()
        if line.strip().startswith("python -m harness --")
    ]
    assert len(commands) >= 4, commands
    refused = []
    for command in commands:
        try:
            _parser().parse_args(shlex.split(command, comments=True)[3:])
        except SystemExit:
            refused.append(f"{command}\n    {capsys.readouterr().err.strip().splitlines()[-1]}")
    assert not refused, "README.md shows commands python -m harness refuses:\n" + "\n".join(refused)
