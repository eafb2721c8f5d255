"""The pipeline's job runner: with a log directory (as `ecr-ray demo` runs it) everything a job prints — Python, the
processes it starts, the file descriptors — goes to its log, and a failure shows the log's tail."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from ecr_ray.pipeline import _call


def job(name: str, argv: list[str]) -> int:
    print("stdout line")
    print("stderr line", file=sys.stderr)
    os.write(1, b"fd line\n")
    subprocess.run([sys.executable, "-c", "print('child line')"], check=True)
    if argv == ["raise"]:
        raise ValueError("bad field")
    return int(argv[0])


def test_job_output_goes_to_its_log_and_a_failure_shows_the_tail(tmp_path, caplog):
    log = tmp_path / "logs" / "job.log"
    lines = ["child line", "fd line", "stderr line", "stdout line"]
    with caplog.at_level(logging.INFO, logger="ecr_ray.pipeline"):
        assert _call("job", ["0"], job, log) == 0
        assert sorted(log.read_text().splitlines()) == lines
        assert "done in" in caplog.text and str(log) in caplog.text
        assert _call("job", ["3"], job, log) == 3
        failed = caplog.text[caplog.text.index("failed (exit 3)") :]
        assert all(line in failed for line in lines)
        with pytest.raises(ValueError, match="bad field"):
            _call("job", ["raise"], job, log)
    assert sorted(log.read_text().splitlines()) == lines  # the output before the exception, kept
    print("after")  # Python's streams are back where they were
    assert sys.stdout is not None and not sys.stdout.closed


def test_without_a_log_the_job_prints_as_it_is(capfd):
    assert _call("job", ["0"], job, None) == 0
    out = capfd.readouterr().out
    assert "stdout line" in out and "child line" in out


def logging_job(name: str, argv: list[str]) -> int:
    """As every job does (jobs/_common.py): the root logger on sys.stderr, which is then the job's log."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
    logging.getLogger("ecr_ray.job").info("job's own line")
    return 0


def test_the_root_logger_is_back_after_a_job_that_configured_it(tmp_path, capfd):
    root = logging.getLogger()
    before = root.handlers[:]
    try:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
        ours = root.handlers[:]
        assert _call("job", [], logging_job, tmp_path / "job.log") == 0
        assert (tmp_path / "job.log").read_text() == "job's own line\n"
        assert root.handlers == ours  # not the job's handler, whose stream (the log) is closed now
        logging.getLogger("ecr_ray.pipeline").info("the next stage's line")
        err = capfd.readouterr().err
        assert "the next stage's line" in err and "Logging error" not in err and "job's own line" not in err
    finally:
        root.handlers[:] = before
