"""Fixtures: the pydemo example packaged by its package.sh and unpacked, then
started the way oortd starts a portable plugin (plugin_process.py)."""

import os
import subprocess
import sys
import zipfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from plugin_process import EXAMPLE, PluginProcess  # noqa: E402


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory):
    """pydemo's zip, made by its package.sh, unpacked as the server would."""
    out = tmp_path_factory.mktemp("package")
    zip_path = out / "pydemo.zip"
    subprocess.run([os.path.join(EXAMPLE, "package.sh"), str(zip_path), "debug"], cwd=EXAMPLE, check=True,
                   stdout=subprocess.DEVNULL)
    unpacked = out / "pydemo"
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(unpacked)
    return unpacked


@pytest.fixture
def plugin(package_dir):
    """A running pydemo process, stopped (stdin closed, then killed) after the test."""
    p = PluginProcess(package_dir)
    p.start()
    try:
        yield p
    finally:
        p.stop()
