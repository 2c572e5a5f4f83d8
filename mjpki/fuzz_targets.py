"""The stateful checks as plain Hypothesis tests, for long campaigns with HypoFuzz over a shared example database.

    MJPKI_FUZZ_ADAPTER=mypkg.adapter:factory MJPKI_FUZZ_DB=/shared/mjpki-fuzz \\
        hypothesis fuzz -n 8 --no-dashboard -- "$(python -c 'import mjpki.fuzz_targets as m; print(m.__file__)')"

One test class per world of `mjpki.conformance.STATEFUL_WORLDS` (the same lockstep machine as `stateful:<world>` of
`mjpki run`). Every test's database is the one MJPKI_FUZZ_DB names: a directory (on a file system every machine mounts)
or redis://HOST:PORT/DB (needs the redis package). Whatever any worker on any machine finds is saved there, and any
later run of this module, by HypoFuzz or by plain pytest, replays it first. The adapter runs in the worker's process
(MJPKI_FUZZ_ADAPTER, default the reference); failing runs are also written as traces to MJPKI_FUZZ_OUT (default
out/fuzz). docs/conformance.md ("Long searches on many machines") has the whole setup.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from mjpki.adapterspec import DEFAULT_ADAPTER, load_factory
from mjpki.conformance import HYPOTHESIS_SHRINK_SHARE, PROFILES, STATEFUL_WORLDS
from mjpki.lockstep import lockstep_machine

__all__ = ["ENV_ADAPTER", "ENV_DB", "ENV_OUT", "ENV_REPLAY", "shared_database"]

ENV_ADAPTER = "MJPKI_FUZZ_ADAPTER"
ENV_DB = "MJPKI_FUZZ_DB"
ENV_OUT = "MJPKI_FUZZ_OUT"
ENV_REPLAY = "MJPKI_FUZZ_REPLAY"


def shared_database(where: str) -> ExampleDatabase:
    """The example database every worker shares: redis://HOST:PORT[/DB], or a directory."""
    if where.startswith(("redis://", "rediss://")):
        try:
            import redis
            from hypothesis.extra.redis import RedisExampleDatabase
        except ImportError as exc:
            raise RuntimeError(f"{ENV_DB}={where}: a Redis database needs the redis package (pip install redis)") from exc
        return RedisExampleDatabase(redis.Redis.from_url(where))
    return DirectoryBasedExampleDatabase(str(Path(where).expanduser()))


# HypoFuzz fuzzes only tests whose database is the default one, and shares that: so the profile sets it for every test here.
settings.register_profile(
    "mjpki-fuzz",
    database=shared_database(os.environ.get(ENV_DB, ".mjpki/fuzz-examples")),
    deadline=None,
    max_examples=PROFILES["ci"].examples,
    stateful_step_count=PROFILES["ci"].steps,
    suppress_health_check=[h for h in HealthCheck if h is not HealthCheck.nested_given],  # HypoFuzz skips tests that suppress it
)
# Replay only what the database holds (no new inputs, no shrinking): what any worker found, on this machine, in seconds.
settings.register_profile("mjpki-fuzz-replay", settings.get_profile("mjpki-fuzz"), phases=[Phase.explicit, Phase.reuse])
settings.load_profile("mjpki-fuzz-replay" if os.environ.get(ENV_REPLAY) else "mjpki-fuzz")

_factory = load_factory(os.environ.get(ENV_ADAPTER, DEFAULT_ADAPTER))
_out = os.environ.get(ENV_OUT, "out/fuzz")

for _name, _make in STATEFUL_WORLDS.items():
    # The failing run a pytest replay reports is reduced step by step (mjpki.minimise) before it is written, as in `mjpki run`.
    _reduce = PROFILES["ci"].shrink_seconds * (1 - HYPOTHESIS_SHRINK_SHARE)
    _machine = lockstep_machine(_factory, _make(), trace_dir=_out, name=f"stateful-{_name}", reduce_seconds=_reduce)
    # Hypothesis keys a state machine's examples by its class's source, the same for every world: this tells them apart.
    _machine._hypothesis_internal_add_digest = f"mjpki-fuzz:stateful:{_name}".encode()  # type: ignore[attr-defined]
    _case = _machine.TestCase
    _case.__name__ = _case.__qualname__ = "TestStateful" + "".join(part.capitalize() for part in _name.split("-"))
    globals()[_case.__name__] = _case
del _name, _make, _machine, _case, _reduce  # pytest collects every unittest.TestCase it finds in the module, whatever its name
