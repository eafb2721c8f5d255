"""The pipeline's job runner: with a log directory (as `ecr-ray demo` runs it) a job's output goes to its log and a
failure shows the log's tail."""

from __future__ import annotations

import logging
import sys

from ecr_ray.pipeline import _call


def test_job_output_goes_to_its_log_and_a_failure_shows_the_tail(tmp_path, caplog):
    log = tmp_path / "logs" / "job.log"
    code = "import sys; print('stdout line'); print('stderr line', file=sys.stderr); sys.exit({})"
    with caplog.at_level(logging.INFO, logger="ecr_ray.pipeline"):
        assert _call([sys.executable, "-c", code.format(0)], log) == 0
        assert sorted(log.read_text().splitlines()) == ["stderr line", "stdout line"]
        assert "done in" in caplog.text and str(log) in caplog.text
        assert _call([sys.executable, "-c", code.format(3)], log) == 3
    failed = caplog.text[caplog.text.index("failed (exit 3)") :]
    assert "stdout line" in failed and "stderr line" in failed
