"""ARCHITECTURE.md holds: the import contract (pyproject.toml, [tool.importlinter]), and a domain free of HTTP errors."""
import ast

from importlinter.cli import lint_imports

from tests.conftest import ROOT


def test_the_import_contract_is_kept(capsys):
    """Fails naming each broken contract and the import chain that breaks it."""
    result = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert result == 0, capsys.readouterr().out


HTTP_FIELDS = {"status", "code", "headers", "details", "retry_after_seconds"}


def _shared_modules():
    for path in sorted((ROOT / "shared").rglob("*.py")):
        yield path.relative_to(ROOT), ast.parse(path.read_text(), str(path))


def test_shared_raises_no_http_shaped_errors():
    """The domain's errors carry facts, never an HTTP answer: functions/errors.py decides statuses and codes.

    No `raise` in shared/ passes an HTTP field or a status number, and no error type there has a status.
    """
    found = []
    for path, tree in _shared_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                call = node.exc
                numbers = [arg.value for arg in [*call.args, *(k.value for k in call.keywords)]
                           if isinstance(arg, ast.Constant) and type(arg.value) is int and 100 <= arg.value < 600]
                fields = [k.arg for k in call.keywords if k.arg in HTTP_FIELDS]
                if numbers or fields:
                    found.append(f"{path}:{node.lineno} raises with {fields or numbers}")
            if isinstance(node, ast.ClassDef) and any("Error" in ast.unparse(base) or "Exception" in ast.unparse(base)
                                                      for base in node.bases):
                for item in ast.walk(node):
                    if isinstance(item, ast.Attribute) and item.attr == "status" and isinstance(item.ctx, ast.Store):
                        found.append(f"{path}:{item.lineno} {node.name} stores a status")
                    if isinstance(item, ast.AnnAssign) and ast.unparse(item.target) == "status":
                        found.append(f"{path}:{item.lineno} {node.name} has a status field")
    assert not found, "\n".join(found)
