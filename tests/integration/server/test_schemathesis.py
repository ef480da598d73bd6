"""schemathesis against the served OpenAPI document: no input makes the server fail (5xx).

Bounded: a few examples per operation, one worker, a fixed seed, no example database, so
the run takes seconds and is the same each time. Needs schemathesis (dev extra).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import unavailable
from tests.integration.server.conftest import Served


def _schemathesis() -> list[str]:
    beside = Path(sys.executable).with_name("schemathesis")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("schemathesis")
    if found is None:
        unavailable("the schemathesis command is not installed (pip install -e '.[dev]')")
    return [found]


def test_no_input_makes_the_server_fail(served: Served, tmp_path: Path) -> None:
    command = [
        *_schemathesis(),
        "run",
        f"{served.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {served.token}",
        "--checks",
        "not_a_server_error",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "15",
        "--seed",
        "1",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
        "--no-color",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    counted = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert counted is not None, result.stdout[-3000:]
    assert int(counted.group(1)) > 100
    assert counted.group(1) == counted.group(2)
