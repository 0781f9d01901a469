"""The import contract of ARCHITECTURE.md (pyproject.toml, [tool.importlinter]) holds: layers in shared, nothing forbidden."""
from importlinter.cli import lint_imports

from tests.conftest import ROOT


def test_the_import_contract_is_kept(capsys):
    """Fails naming each broken contract and the import chain that breaks it."""
    result = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert result == 0, capsys.readouterr().out
