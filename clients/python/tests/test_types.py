"""The package ships typed stubs: mypy accepts correct use and rejects misuse."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("mypy")

GOOD = """
from oort.v1 import rule_pb2, stream_pb2
from oort_client import Oort

oort = Oort("127.0.0.1:9081")
stream: stream_pb2.Stream = oort.streams.create("CREATE STREAM s () WITH (TYPE=\\"grpc\\")")
name: str = stream.name
status: rule_pb2.GetRuleStatusResponse = oort.rules.status("r")
counts: list[int] = [op.records_out_total for op in status.operators]
request = rule_pb2.CreateRuleRequest(rule=rule_pb2.Rule(id="r", sql="SELECT 1"))
"""

BAD = """
from oort.v1 import rule_pb2
from oort_client import Oort

oort = Oort("127.0.0.1:9081")
count: int = oort.streams.create("x").name
rule = rule_pb2.Rule(id=7)
"""


def mypy(tmp_path: pathlib.Path, source: str) -> subprocess.CompletedProcess[str]:
    file = tmp_path / "snippet.py"
    file.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(file)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )


def test_correct_use_type_checks(tmp_path: pathlib.Path) -> None:
    result = mypy(tmp_path, GOOD)
    assert result.returncode == 0, result.stdout + result.stderr


def test_misuse_is_rejected(tmp_path: pathlib.Path) -> None:
    result = mypy(tmp_path, BAD)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'Incompatible types in assignment (expression has type "str", variable has type "int")' in result.stdout
    assert 'Argument "id" to "Rule" has incompatible type "int"' in result.stdout
