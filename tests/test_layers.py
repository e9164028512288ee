"""The layout by layers: no module uses another's private names; PalmFit stays thin."""

import ast
import inspect
from pathlib import Path

import palm_bayes

PACKAGE = Path(palm_bayes.__file__).parent


def _private_imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("palm_bayes"):
            found += [
                f"{node.module}.{a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
    return found


def test_no_module_imports_another_modules_private_names():
    found = {}
    for file in sorted(PACKAGE.glob("*.py")):
        names = _private_imports(ast.parse(file.read_text()))
        if names:
            found[file.name] = names
    assert not found, found


def test_palm_fit_methods_delegate_to_query_functions():
    from palm_bayes import labels, queries
    from palm_bayes.fit import PalmFit
    from palm_bayes.posterior import PalmPosterior

    assert issubclass(PalmFit, PalmPosterior)
    for name in ("forecast", "forecast_draws", "prob_better", "population", "summary",
                 "diagnostics"):  # fmt: skip
        assert callable(getattr(queries, name))
        assert f"queries.{name}(" in inspect.getsource(getattr(PalmFit, name))
    for name in ("labels_needed", "labels_needed_draws"):
        assert callable(getattr(labels, name))
        assert f"labels.{name}(" in inspect.getsource(getattr(PalmFit, name))
    own = [n for n, v in vars(PalmFit).items() if callable(v) and not n.startswith("__")]
    body = sum(len(inspect.getsource(getattr(PalmFit, n)).splitlines()) for n in own)
    assert body < 200  # data, I/O and queries live elsewhere


def test_decisions_import_palm_fit_only_for_type_checking():
    for name in ("advise", "schedule", "phases", "plots", "tables"):
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        runtime = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "palm_bayes.fit"
        ]
        guarded = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for inner in ast.walk(node)
            if isinstance(inner, ast.ImportFrom) and inner.module == "palm_bayes.fit"
        ]
        assert len(runtime) == len(guarded), name
