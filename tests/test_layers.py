"""The layout by layers: no module uses another's private names; PalmFit stays thin."""

import ast
import inspect
from pathlib import Path

import al_runner
import palm_bayes

PACKAGES = [Path(palm_bayes.__file__).parent, Path(al_runner.__file__).parent]


def _private_imports(tree: ast.AST, package: str) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package):
            found += [
                f"{node.module}.{a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
    return found


def test_no_module_imports_another_modules_private_names():
    found = {}
    for package in PACKAGES:
        for file in sorted(package.rglob("*.py")):
            names = _private_imports(ast.parse(file.read_text()), package.name)
            if names:
                found[str(file.relative_to(package.parent))] = names
    assert not found, found


def test_every_module_lives_in_a_layer_folder():
    """Only the package's door, its errors and the fit facade sit at the top of palm_bayes."""
    top = {f.name for f in PACKAGES[0].glob("*.py")}
    assert top == {"__init__.py", "errors.py", "palm_fit.py"}


def test_palm_fit_stays_thin():
    from palm_bayes.inference.posterior import PalmPosterior
    from palm_bayes.palm_fit import PalmFit

    assert issubclass(PalmFit, PalmPosterior)
    own = [n for n, v in vars(PalmFit).items() if callable(v) and not n.startswith("__")]
    body = sum(len(inspect.getsource(getattr(PalmFit, n)).splitlines()) for n in own)
    assert body < 200  # data, I/O and queries live elsewhere


def test_public_names_are_the_functions_not_modules():
    import palm_bayes as pb

    for name in ("fit", "compare", "advise", "phases", "schedule"):
        assert callable(getattr(pb, name)) and not inspect.ismodule(getattr(pb, name)), name


def test_no_function_is_over_100_lines():
    """The house rule: a function longer than a screen or two is split by role."""
    long = []
    for package in PACKAGES:
        for file in sorted(package.rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > 100:
                        long.append(f"{file.relative_to(package.parent)}:{node.name} ({lines})")
    assert not long, long
