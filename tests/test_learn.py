"""Automata learning of applets (mjpki.learn): the reference learns to the model's machine, faulty applets do not.

Each learning run personalises its applet (two RSA key generations) and learns it in ~8 s, so the runs are few: the
reference once (shared), two faulty applets through the API, a third through `mjpki learn`.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from mjpki import learn as L
from mjpki.adapters.applet import ReferenceApplet
from mjpki.applet_host import AppletHost
from mjpki.cli import main
from mjpki.impl.apdu import CommandApdu
from mjpki.impl.se import _JPKI, GpSe, _Slot
from mjpki.impl.se_apdu import SW_OK
from mjpki.spec.apdu.commands import command_from_json
from mjpki.spec.apdu.model import step
from mjpki.spec.domain import Kind

# --- three small faults ---------------------------------------------------------------------------------------------


class RetryNotDecremented(GpSe):
    """A wrong PIN is answered 63Cx, but the retry counter is not decremented (nor the PIN ever locked)."""

    def _check_pin(self, kind: Kind, slot: _Slot, candidate: bytes) -> bytes:
        tries, status = slot.tries_left, slot.pin_status
        sw = super()._check_pin(kind, slot, candidate)
        if sw != SW_OK:
            slot.tries_left, slot.pin_status = tries, status
        return sw


class VerifiedKeptOverReset(GpSe):
    """The PIN-verified flags are cleared when the applet is deselected (the Java Card habit), so a reset keeps them.

    Keeping them over power_reset alone would not show: SELECT of the applet clears them anyway, and nothing reaches
    the applet before that SELECT.
    """

    def power_reset(self) -> None:
        verified = set(self._verified)
        super().power_reset()
        self._verified |= verified

    def _select_application(self, cmd: CommandApdu, caller: bytes | None) -> tuple[bytes, bytes]:
        deselects_applet = self._selected == _JPKI
        verified = set(self._verified)
        data, sw = super()._select_application(cmd, caller)
        if sw == SW_OK and not deselects_applet:
            self._verified |= verified
        return data, sw


class TsmAtLevel01(GpSe):
    """TSM commands are accepted in any secure channel, a C-MAC-only one (level 01) included."""

    def _require_secure(self, level: int | None) -> None:
        if level is None:
            super()._require_secure(level)


class RefusesInstall(GpSe):
    """INSTALL is refused: the personalisation already parts from the model."""

    def _isd_install(self, cmd: CommandApdu) -> tuple[bytes, bytes]:
        return b"", b"\x6a\x80"


class AlternatingEmptyVerify(GpSe):
    """Every other empty VERIFY, counted across SEs, answers 63C1: the same word gets two answers."""

    calls = itertools.count()

    def _jpki_verify(self, cmd: CommandApdu, level: int | None) -> tuple[bytes, bytes]:
        if not cmd.data and next(self.calls) % 2:
            return b"", b"\x63\xc1"
        return super()._jpki_verify(cmd, level)


# --- the reference ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> L.LearnRun:
    """The reference applet, learned once for this module."""
    return L.learn_applet(GpSe)


def test_the_reference_applet_learns_to_the_models_machine(reference: L.LearnRun) -> None:
    c = reference.comparison
    assert c.equal, [d.describe() for d in c.differences]
    assert c.learned.size == c.model.size
    assert 10 <= c.model.size <= 99, "the alphabet should keep the machine at tens of states"
    assert reference.learned.seconds < 60


def test_the_model_sul_answers_as_the_models_machine(reference: L.LearnRun) -> None:
    sul = L.ModelSul(reference.start.state)
    machine = reference.comparison.model
    rng = random.Random(7)
    for _ in range(200):
        word = tuple(rng.choice(machine.inputs) for _ in range(rng.randrange(1, 15)))
        assert sul.query(word) == machine.run(word), word


def test_the_applet_sul_answers_as_the_learned_machine(reference: L.LearnRun) -> None:
    start = reference.start
    sul = L.AppletSul(L.reference_opener(GpSe, start), start.keys)
    machine = reference.comparison.learned
    rng = random.Random(11)
    for _ in range(50):
        word = tuple(rng.choice(machine.inputs) for _ in range(rng.randrange(1, 12)))
        assert sul.query(word) == machine.run(word), word


def test_outputs_of_an_equal_run_have_no_differences(reference: L.LearnRun, tmp_path: Path) -> None:
    written = {p.name for p in L.write_outputs(reference, tmp_path, name="mjpki.impl.se:GpSe")}
    assert {"learned.dot", "model.dot", "start-snapshot.json"} <= written
    assert not any(name.startswith("diff-") for name in written)
    assert "color=red" not in (tmp_path / "learned.dot").read_text()


# --- machines ------------------------------------------------------------------------------------------------------------


def _machine(rows: dict[int, dict[str, tuple[str, int]]]) -> L.Machine:
    inputs = ("a", "b")
    return L._explore(inputs, 0, lambda s, a: rows[s][a])  # type: ignore[index]


def test_minimise_merges_equivalent_states_and_product_finds_a_shortest_word() -> None:
    # a counter mod 2 written with four states, against one that forgets on b
    four = _machine(
        {
            0: {"a": ("x", 1), "b": ("y", 0)},
            1: {"a": ("z", 2), "b": ("y", 1)},
            2: {"a": ("x", 3), "b": ("y", 2)},
            3: {"a": ("z", 0), "b": ("y", 3)},
        }
    )
    forgetful = _machine({0: {"a": ("x", 1), "b": ("y", 0)}, 1: {"a": ("z", 0), "b": ("y", 0)}})
    two = L.minimise(four)
    assert two.size == 2
    splits, _ = L._product(two, forgetful)
    assert min(len(s.word) for s in splits) == 3
    assert splits[0].word == ("a", "b", "a") and (splits[0].left, splits[0].right) == ("z", "x")


# --- faulty applets ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("applet", "rule", "reqs"), [(RetryNotDecremented, "verify", "PIN-3"), (VerifiedKeptOverReset, "sign", "PIN-3")])
def test_a_faulty_applet_learns_to_another_machine_and_the_trace_shows_it_in_lockstep(applet: type[GpSe], rule: str, reqs: str) -> None:
    run = L.learn_applet(applet)
    c = run.comparison
    assert not c.equal
    assert c.learned_marks, "the differing transitions are marked for the drawing"
    first = c.differences[0]
    assert (first.rule, reqs in first.reqs) == (rule, True), first.describe()
    for difference in c.differences:
        # step by step on the faulty applet, judged by the model with the applet's observations
        start = run.start
        host = AppletHost(ReferenceApplet(applet.from_snapshot(start.snapshot)), isd_keys=start.keys)
        state, problems_at = start.state, []
        for i, command in enumerate(difference.trace):
            result = step(state, command, host.run(command).observed)
            if result.problems:
                problems_at.append(i)
            state = result.state
        assert problems_at and problems_at[0] == difference.at, (difference.describe(), problems_at)


def test_mjpki_learn_writes_replayable_traces_of_a_faulty_applet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "learn"
    assert main(["learn", "--applet", f"{__name__}:TsmAtLevel01", "--out", str(out)]) == 1
    text = capsys.readouterr().out
    assert "DIFFERENT" in text and "security-level (ISS-9)" in text
    assert {"learned.dot", "model.dot", "start-snapshot.json", "diff-1.json"} <= {p.name for p in out.iterdir()}
    assert "color=red" in (out / "learned.dot").read_text()
    diff = json.loads((out / "diff-1.json").read_text())
    assert diff["word"][:2] == ["select-jpki", "open-01"] and "ISS-9" in diff["reqs"]
    commands = [command_from_json(c) for c in diff["commands"]]
    replayed = L.replay(TsmAtLevel01, commands)  # on a new personalisation: the trace holds no card-chosen value
    first_problem = next(i for i, r in enumerate(replayed) if r.result.problems)
    assert first_problem == diff["differs_at"]
    assert replayed[first_problem].observed.sw_hex in diff["applet_output"].split("/")


def test_mjpki_learn_reports_a_personalisation_that_parts_from_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["learn", "--applet", f"{__name__}:RefusesInstall", "--out", str(tmp_path)]) == 1
    assert "personalisation step 4 (isd-install): status word 6A80" in capsys.readouterr().out
    commands = json.loads((tmp_path / "personalisation.json").read_text())["commands"]
    assert [command_from_json(c).to_json() for c in commands] == commands and len(commands) == 4


def test_mjpki_learn_reports_an_applet_that_is_not_deterministic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["learn", "--applet", f"{__name__}:AlternatingEmptyVerify", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "not deterministic" in out and "63C1" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--applet", "no.such.module:GpSe"], "cannot import"),
        (["--applet", "mjpki.impl.se:SNAPSHOT_FORMAT"], "learn needs a class like mjpki.impl.se.GpSe"),
        (["--applet", "mjpki.impl.se"], "module:Class"),
    ],
)
def test_mjpki_learn_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["learn", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_the_alphabet_is_small_and_the_apdus_well_formed() -> None:
    assert 12 <= len(L.ALPHABET) <= 20 and len(L.SYMBOLS) == len(L.ALPHABET)
    for symbol in L.ALPHABET:
        for command in symbol.commands:
            apdu = getattr(command, "apdu", None)
            if apdu is not None:
                CommandApdu.parse(apdu)  # raises on a malformed APDU
