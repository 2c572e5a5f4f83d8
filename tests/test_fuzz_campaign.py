"""A HypoFuzz campaign over the stateful checks (issue 15, part 5): two local workers share a directory database, and a
separate run that shares only that directory replays what they found (docs/conformance.md, "Long searches")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The seeded bug resumes a suspended card signing certificate when the card is found (SUS-3); the variants world's
# generated runs reach it within seconds.
FAULTY_MODULE = """
from mjpki.adapters.spec_adapter import SpecSystem
from mjpki.properties.seeded_bugs import SEEDED_BUGS

def factory(world):
    return SpecSystem(world, stepper=SEEDED_BUGS["card_found_resumes_signing"].stepper)
"""
TARGETS = str(ROOT / "mjpki" / "fuzz_targets.py")
"""Run in subprocesses only: importing it loads its Hypothesis profile (the shared database) for the whole process."""
HYPOTHESIS = Path(sys.executable).with_name("hypothesis")


def _env(tmp_path: Path, db: Path, out: Path, *, replay: bool = False) -> dict[str, str]:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(tmp_path),
        "MJPKI_FUZZ_ADAPTER": "h6_fuzz_faulty:factory", "MJPKI_FUZZ_DB": str(db), "MJPKI_FUZZ_OUT": str(out),
    }  # fmt: skip
    if replay:
        env["MJPKI_FUZZ_REPLAY"] = "1"
    return env


def _replay(tmp_path: Path, db: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """Another machine's plain pytest run with only the database in common: it replays what the campaign saved."""
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", TARGETS, "-k", "Variants"]
    return subprocess.run(argv, cwd=tmp_path, env=_env(tmp_path, db, out, replay=True), capture_output=True, text=True, timeout=120)


def test_two_workers_share_what_they_find_through_the_database(tmp_path: Path) -> None:
    (tmp_path / "h6_fuzz_faulty.py").write_text(textwrap.dedent(FAULTY_MODULE), encoding="utf-8")
    db, out = tmp_path / "shared-db", tmp_path / "campaign-out"
    before = _replay(tmp_path, db, tmp_path / "before")
    assert before.returncode == 5 or "skipped" in before.stdout, before.stdout[-2000:]  # nothing found yet: nothing replayed
    argv = [str(HYPOTHESIS), "fuzz", "-n", "2", "--no-dashboard", "--", "-p", "no:cacheprovider", TARGETS, "-k", "Variants"]
    campaign = subprocess.Popen(
        argv, cwd=tmp_path, env=_env(tmp_path, db, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    replayed = last = None
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            # HypoFuzz saves a failure as found, then again once shrunk, and stops when its only test has failed and shrunk:
            # replay until it shows, whether the campaign still runs or not.
            exited = campaign.poll() is not None
            time.sleep(0 if exited else 2)
            if not (out / "stateful-variants.json").is_file():
                if exited:
                    break
                continue  # no worker has diverged yet
            done = last = _replay(tmp_path, db, tmp_path / "replay")
            if done.returncode == 1:
                replayed = done
                break
            if exited:
                break
    finally:
        if campaign.poll() is None:
            os.killpg(campaign.pid, signal.SIGTERM)  # the campaign's own process group: hypothesis fuzz and its two workers
        log = campaign.communicate(timeout=60)[0]
    assert "using 2 processes to fuzz 1 test" in log, log[-2000:]  # both workers on the variants world's search
    assert replayed is not None, f"nothing found and replayed in time\n{log[-2000:]}\n{last.stdout[-1500:] if last else ''}"
    assert "TestStatefulVariants" in replayed.stdout and "1 failed" in replayed.stdout
    table = (tmp_path / "replay" / "stateful-variants.txt").read_text(encoding="utf-8")
    assert "SUS-3" in table.splitlines()[1]  # the replay's own trace: the divergence the campaign found
