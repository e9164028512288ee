"""Every command and snippet of README.md and of the documentation pages runs as written.

The fenced ``bash`` and ``python`` blocks are read from ``README.md`` and from every page under
``docs/`` (``console`` and ``text`` blocks are illustrations and are not run), so a renamed
flag, file or strategy there fails this test. The pages run in one temporary folder holding a
link to ``examples/``, the README first and then the pages in the order of the site's table of
contents (``docs/index.md``; a glob adds its pages in file-name order), one test per page:
asking for one page runs the pages before it first, since a page may read what an earlier one
wrote (``fit/`` of the quickstart). Commands run in-process (``palm`` and ``al-runner``'s
``main``); the Python blocks of one page share a namespace that starts with
``import palm_bayes as pb``. The sampler is capped (2 chains x 100 draws) and fits with the
same curves and arguments are made once and shared, so that the whole documentation takes a
few minutes: this checks that the commands work, not the precision of their answers.

A few commands cannot run here: they need data the user supplies (CIFAR-10 folder, their own
feature file), a Ray cluster, or hours of CPU (SSL training on Fashion-MNIST). Those are parsed
by the command's own argument parser, so their flags are still checked; ``SKIPPED`` lists them
with the reason.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import pickle
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import palm_bayes as pb

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

#: Commands parsed but not run (a substring of the command -> why).
SKIPPED = {
    "make ": "the set-up commands themselves (CI runs `make test`)",
    "pip install": "installation (done by the set-up)",
    "apt-get install": "installation (a Debian package)",
    "--dataset fashion-mnist": "SSL training / AL on 70k Fashion-MNIST images: hours of CPU",
    "--dataset cifar10": "needs CIFAR-10 in a folder the user supplies (DATA)",
    "feats.np": "the user's own feature file",
    "al-runner sweep": "a Ray sweep of grid.toml (Fashion-MNIST, SimCLR): hours of CPU",
}
SAMPLER_CAP = {"chains": 2, "draws": 100, "tune": 100}
#: The languages whose blocks run.
RUN = {"bash", "python", "toml"}


def doc_pages() -> list[Path]:
    """README.md, then every page of ``docs/`` in the order of the table of contents."""
    index = DOCS / "index.md"
    pages: list[Path] = [README, index]
    for toctree in re.findall(r"```\{toctree\}\n(.*?)```", index.read_text(), re.S):
        for entry in toctree.splitlines():
            entry = entry.strip()
            if not entry or entry.startswith(":"):
                continue
            matches = sorted(DOCS.glob(f"{entry}.md")) if "*" in entry else [DOCS / f"{entry}.md"]
            pages += [page for page in matches if page not in pages]
    others = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
    return pages + [page for page in others if page not in pages]


def fenced_blocks(path: Path) -> list[tuple[int, str, str]]:
    """``(line, language, text)`` of every top-level fenced block of a Markdown file.

    A fence is three or more backticks or tildes (indented like the text around it); it is
    closed by a fence of the same character at least as long, so a ```` ```` ```` block may
    show a ```` ``` ```` one without it running. MyST directives (```` ```{note} ````) are
    not code.
    """
    blocks, lines = [], path.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)", lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, lang = opening.groups()
        start, body = i + 1, []
        i += 1
        closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        while i < len(lines) and not closing.match(lines[i]):
            body.append(lines[i].removeprefix(indent))
            i += 1
        assert i < len(lines), f"{path.name} line {start}: a {fence} fence is never closed"
        blocks.append((start, lang, "\n".join(body)))
        i += 1
    return blocks


def shell_commands(text: str) -> list[str]:
    """Logical command lines of a bash block (continuations joined, comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(shlex.join(words))
    return commands


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


PAGES = doc_pages()


def test_docs_have_blocks_of_both_kinds():
    blocks = [block for page in PAGES for block in fenced_blocks(page)]
    assert {"bash", "python"} <= {lang for _, lang, _ in blocks}
    commands = {c for _, lang, text in blocks if lang == "bash" for c in shell_commands(text)}
    skipped = [c for c in commands if any(k in c for k in SKIPPED)]
    assert len(commands) >= 30 and len(skipped) <= 15, (len(commands), skipped)
    readme_langs = {lang for _, lang, _ in fenced_blocks(README)}
    assert {"bash", "python"} <= readme_langs


def test_fence_reader_nests_and_skips_directives(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "````text\n```python\nnot run\n```\n````\n"
        "```{note}\nnot code\n```\n"
        "- a list item\n\n  ```python\n  x = 1\n  ```\n"
    )
    assert fenced_blocks(page) == [
        (1, "text", "```python\nnot run\n```"),
        (6, "{note}", "not code"),
        (11, "python", "x = 1"),
    ]


@dataclass
class Session:
    """What the pages share: the folder, commands already run, fits made, output seen."""

    folder: Path
    done_pages: list[str] = field(default_factory=list)
    done_commands: set[str] = field(default_factory=set)
    fits: dict[str, object] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Session:
    folder = tmp_path_factory.mktemp("docs")
    (folder / "examples").symlink_to(ROOT / "examples")
    return Session(folder)


def _curves_key(curves: object) -> str:
    if isinstance(curves, str | Path):
        return str(curves)
    return hashlib.sha1(pickle.dumps(curves)).hexdigest()


def _hierarchy_key(hierarchy: object) -> object:
    """``"strategy,dataset"`` (the command line's) and ``("strategy", "dataset")`` name one fit.

    The same reading as :func:`palm_bayes.inference.pooled.check_hierarchy`, so that the pooled
    fit of the quickstart's ``palm fit --hierarchy strategy,dataset`` is the one the pooling
    page's Python block asks for with a tuple (the fit itself still validates what it gets).
    """
    if isinstance(hierarchy, str):
        return tuple(h.strip() for h in hierarchy.split(",") if h.strip())
    if isinstance(hierarchy, list | tuple):
        return tuple(hierarchy)
    return hierarchy


@pytest.fixture
def capped_sampler(monkeypatch, session):
    """``pb.fit`` with at most 2 chains x 100 draws, each distinct fit made once per session."""
    fit_module = importlib.import_module("palm_bayes.palm_fit")
    original = fit_module.fit
    signature = inspect.signature(original)

    def capped(curves, **kwargs):
        bound = signature.bind(curves, **(kwargs | SAMPLER_CAP))
        bound.apply_defaults()
        arguments = {k: v for k, v in bound.arguments.items() if k not in ("curves", "progress")}
        arguments["hierarchy"] = _hierarchy_key(arguments["hierarchy"])
        arguments["priors"] = arguments["priors"] or None  # the command line's {} is no override
        try:
            key = _curves_key(curves) + repr(sorted(arguments.items()))
        except (pickle.PicklingError, TypeError, AttributeError):
            return original(curves, **(kwargs | SAMPLER_CAP))
        if key not in session.fits:
            session.fits[key] = original(curves, **(kwargs | SAMPLER_CAP))
        return session.fits[key]

    monkeypatch.setattr(fit_module, "fit", capped)
    monkeypatch.setattr(pb, "fit", capped)


def _run_command(command: str) -> None:
    from al_runner.cli import build_parser as runner_parser
    from al_runner.cli import main as runner_main
    from palm_bayes.cli import build_parser as palm_parser
    from palm_bayes.cli import main as palm_main

    program, *argv = shlex.split(command)
    tools = {"palm": (palm_main, palm_parser), "al-runner": (runner_main, runner_parser)}
    reason = next((why for key, why in SKIPPED.items() if key in command), None)
    if program not in tools:
        assert reason, f"command {command!r} is neither palm nor al-runner nor skipped"
        return
    main, parser = tools[program]
    if reason:
        parser().parse_args(argv)  # flags and values must still be valid
        return
    code = main(argv)
    assert code in (0, None), f"command failed ({code}): {command}"


def _run_page(page: Path, session: Session) -> None:
    namespace: dict = {"pb": pb, "__name__": "__docs__"}
    for line, lang, text in fenced_blocks(page):
        where = f"{_name(page)} line {line}"
        if lang == "bash":
            for command in shell_commands(text):
                if command in session.done_commands:  # the same command on an earlier page
                    continue
                session.done_commands.add(command)
                try:
                    _run_command(command)
                except SystemExit as exc:  # argparse refused the command line
                    pytest.fail(f"{where}: {command!r} exited with {exc.code}")
        elif lang == "python":
            try:
                exec(compile(text, where, "exec"), namespace)
            except Exception as exc:
                pytest.fail(f"{where}: {type(exc).__name__}: {exc}")
        elif lang == "toml":
            name = re.match(r"#\s*(\S+\.toml)", text)
            assert name, f"{where}: a toml block starts with '# <file>.toml'"
            (session.folder / name.group(1)).write_text(text)
            from al_runner.sweep.run import SweepGrid

            SweepGrid.from_toml(session.folder / name.group(1))  # the example grid is valid


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_block_runs(page, session, monkeypatch, capped_sampler, capsys):
    monkeypatch.chdir(session.folder)
    for earlier in PAGES[: PAGES.index(page) + 1]:
        if _name(earlier) in session.done_pages:
            continue
        session.done_pages.append(_name(earlier))  # once, even when it fails
        try:
            _run_page(earlier, session)
        finally:
            session.output.append(capsys.readouterr().out)


def test_the_pages_made_their_outputs(session, monkeypatch, capped_sampler, capsys):
    test_every_block_runs(PAGES[-1], session, monkeypatch, None, capsys)
    out = "".join(session.output)
    assert "PALM posterior" in out and "Advice for target accuracy" in out
    for made in ("fit/fit.nc", "pooled/fit.nc", "report.html", "my_prior.json", "curves.nc"):
        assert (session.folder / made).exists(), made
