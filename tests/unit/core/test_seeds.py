"""request_seed lives in core, and the worker reaches it without the service layer."""

from __future__ import annotations

import subprocess
import sys

from reelgate.core.seeds import request_seed


def test_the_worker_does_not_import_the_service_layer() -> None:
    code = (
        "import sys, reelgate.worker.worker, reelgate.worker.pool, reelgate.worker.jobs; "
        "print('reelgate.service' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_seed_depends_on_the_request_only() -> None:
    params = {"prompt": "street", "duration": 3}
    seed = request_seed("m", params)
    assert seed == request_seed("m", {"duration": 3, "prompt": "street"})  # key order is moot
    assert seed != request_seed("m", {**params, "duration": 4})
    assert seed != request_seed("other", params)
    assert 0 <= seed < 2**32
