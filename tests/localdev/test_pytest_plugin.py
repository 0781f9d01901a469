"""The pytest plugin as an outside project uses it: Anteroom pip-installed into a fresh virtualenv in a
temporary folder, a project there whose tests use only the plugin's fixtures (the README's example).

The fresh virtualenv reaches this venv's packages (pytest, the SDKs, aiohttp) through a .pth file,
so nothing is downloaded; Anteroom itself is built and installed with `pip install --no-deps`, from
a copy of the files a package build reads (the checkout stays free of build output).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from .instance_support import REPO_ROOT

EXAMPLE = REPO_ROOT / "docs" / "plugin_example" / "test_rooms_with_anteroom.py"
PACKAGE_FILES = ("pyproject.toml", "function_app.py", "host.json", "localdev", "shared", "functions")


def _run(command: list[str], **options) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **options)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def test_an_outside_project_runs_the_readme_example_with_the_installed_plugin(tmp_path):
    source = tmp_path / "anteroom"
    source.mkdir()
    for name in PACKAGE_FILES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO_ROOT / name, source / name)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    (site / "outer-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--disable-pip-version-check",
          "--no-deps", "--no-build-isolation", str(source)])

    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(EXAMPLE, project / EXAMPLE.name)
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PYTHONPATH", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
    environment["ANTEROOM_AZURITE_DIR"] = str(REPO_ROOT)  # an outside project: `npm install azurite` there
    result = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
                   str(project)], cwd=project, env=environment)
    assert re.search(r"\b2 passed\b", result.stdout), result.stdout
    # It ran the installed copy, not this checkout.
    located = _run([str(python), "-c", "import localdev, function_app; print(localdev.__file__, function_app.__file__)"],
                   cwd=project, env=environment).stdout
    assert str(REPO_ROOT) not in located and str(site) in located
    assert (venv / "anteroom" / "host.json").exists()


def test_the_readme_shows_the_example_as_it_is():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert EXAMPLE.read_text(encoding="utf-8").strip() in readme
