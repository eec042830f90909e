"""`schemathesis run` against the live /openapi.json of the app under gunicorn.

Every built-in check is on and every phase runs (examples, coverage, fuzzing,
stateful); valid and invalid inputs are generated, so a bad input must get a
4xx and never a 500, and every response must match its documented status code,
content type, headers and schema. The run is reproducible: a seed (FUZZ_SEED;
fixed in `make test`, new and printed in each `make fuzz`) and at most
FUZZ_MAX_EXAMPLES generated cases per operation (25 in `make test`, 1000 in
`make fuzz`). Settings: schemathesis.toml.

The CLI runs in a subprocess: its report (with a curl command per failure) is
the test's output, and its pytest integration for schemas loaded inside
fixtures (``schemathesis.pytest.from_fixture``) does not run on pytest 9.2.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
SEED = int(os.environ.get("FUZZ_SEED", "20240601"))
# Generous: a bounded run takes seconds; this only stops a hung one.
TIMEOUT = 300 + 3 * MAX_EXAMPLES


def test_schemathesis_run(fuzz_server, fuzz_accounts, tmp_path):
    login = fuzz_accounts["superuser"]
    env = {
        **os.environ,
        "FUZZ_EMAIL": login["email"],
        "FUZZ_PASSWORD": login["password"],
        "SCHEMATHESIS_HOOKS": str(HERE / "fuzz_hooks.py"),
    }
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--no-color",
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{fuzz_server.base_url}/openapi.json",
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
    ]
    # cwd: its .schemathesis/ crash files (for `st replay`) and .hypothesis/ stay out of the repo.
    output = [
        f"gunicorn at {fuzz_server.base_url}, database {fuzz_server.database}, "
        f"seed {SEED} (FUZZ_SEED), {MAX_EXAMPLES} examples per operation\n"
    ]
    sys.stdout.write(output[0])  # live with `pytest -s` (make fuzz): the seed comes first
    with subprocess.Popen(
        command, env=env, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as process:
        watchdog = threading.Timer(TIMEOUT, process.kill)
        watchdog.start()
        try:
            for line in process.stdout:  # live with `pytest -s` (make fuzz)
                sys.stdout.write(line)
                output.append(line)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
    # The report is the captured output above; `st replay <id>` works from tmp_path.
    assert process.returncode == 0, (
        f"schemathesis found problems (seed {SEED}, {MAX_EXAMPLES} examples per operation, "
        f"crash files in {tmp_path}):\n" + "".join(output[-60:])
    )
