"""The lifecycle invariants, as named predicates over Observations.

State invariants look at one observation; transition invariants look at a step (the
observation before, the action, its outcome, the observation after). Each returns the list
of violations it finds, each message naming the serials, persons or phones involved.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from mjpki.spec import actions as A
from mjpki.spec.domain import CASCADING_REASONS, CertStatus, Kind, PinStatus, Profile
from mjpki.spec.observe import CertView, Observation
from mjpki.spec.outcome import Outcome
from mjpki.spec.rules import max_tries
from mjpki.spec.world import World

__all__ = [
    "Violation",
    "Invariant",
    "TransitionInvariant",
    "STATE_INVARIANTS",
    "TRANSITION_INVARIANTS",
    "LOUD_ON_UNCHANGED_REFUSAL",
    "check_state",
    "check_transition",
    "invariant_names",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    """An invariant that does not hold, with the requirement IDs it protects."""

    invariant: str
    reqs: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return f"{self.invariant} [{', '.join(self.reqs)}]: {self.message}"


StateCheck = Callable[[World, Observation], list[str]]
StepCheck = Callable[[World, Observation, A.Action, Outcome, Observation], list[str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Invariant:
    """A named predicate over one observation."""

    name: str
    reqs: tuple[str, ...]
    doc: str
    check: StateCheck


@dataclass(frozen=True, slots=True, kw_only=True)
class TransitionInvariant:
    """A named predicate over one step."""

    name: str
    reqs: tuple[str, ...]
    doc: str
    check: StepCheck
    quiet_on_unchanged_refusal: bool = False
    """It cannot fire on a refused step whose observation is the very one before it (check_transition skips it there:
    three steps in four of the explorer's are such refusals); tests/test_invariants.py checks the claim on explored steps."""


STATE_INVARIANTS: dict[str, Invariant] = {}
TRANSITION_INVARIANTS: dict[str, TransitionInvariant] = {}


def _state(name: str, *reqs: str) -> Callable[[StateCheck], StateCheck]:
    def wrap(fn: StateCheck) -> StateCheck:
        if name in STATE_INVARIANTS or name in TRANSITION_INVARIANTS:
            raise ValueError(f"invariant {name} defined twice")
        STATE_INVARIANTS[name] = Invariant(name=name, reqs=reqs, doc=(fn.__doc__ or "").strip(), check=fn)
        return fn

    return wrap


def _step(name: str, *reqs: str, quiet_on_unchanged_refusal: bool = False) -> Callable[[StepCheck], StepCheck]:
    def wrap(fn: StepCheck) -> StepCheck:
        if name in STATE_INVARIANTS or name in TRANSITION_INVARIANTS:
            raise ValueError(f"invariant {name} defined twice")
        TRANSITION_INVARIANTS[name] = TransitionInvariant(
            name=name, reqs=reqs, doc=(fn.__doc__ or "").strip(), check=fn, quiet_on_unchanged_refusal=quiet_on_unchanged_refusal
        )
        return fn

    return wrap


def _phone_certs(obs: Observation) -> list[CertView]:
    return [c for c in obs.certs if c.profile is Profile.PHONE]


# --- state invariants -------------------------------------------------------------------------------


@_state("one_phone_cert_per_kind", "LNK-3")
def _one_per_kind(world: World, obs: Observation) -> list[str]:
    """A person has at most one live (unrevoked, unexpired) phone certificate of each kind."""
    seen: dict[tuple[str, Kind], list[int]] = defaultdict(list)
    for c in _phone_certs(obs):
        if c.live(obs.now):
            seen[(c.person, c.kind)].append(c.serial)
    return [f"{p} has {len(s)} live phone {k.value} certificates: {s}" for (p, k), s in seen.items() if len(s) > 1]


@_state("phone_certs_on_one_se", "LNK-4", "LNK-5")
def _one_se(world: World, obs: Observation) -> list[str]:
    """A person's live phone certificates are all in the same SE."""
    ses: dict[str, set[str | None]] = defaultdict(set)
    for c in _phone_certs(obs):
        if c.live(obs.now):
            ses[c.person].add(c.se_id)
    return [f"{p}'s live phone certificates are split across SEs {sorted(map(str, s))}" for p, s in ses.items() if len(s) > 1]


@_state("phone_cert_linked_to_card_signing", "LNK-1", "LNK-2")
def _linked(world: World, obs: Observation) -> list[str]:
    """Every phone certificate is linked to a card signing certificate of the same person, and follows exactly the
    card certificates of that person the phone_linkage variant names for its kind (ASM-PHONE-LINKAGE): by default,
    the card signing certificate it is linked to."""
    out = []
    for c in _phone_certs(obs):
        card = obs.cert(c.card_serial) if c.card_serial is not None else None
        if card is None or card.profile is not Profile.CARD or card.kind is not Kind.SIGNING or card.person != c.person:
            out.append(f"phone certificate {c.serial} of {c.person} is linked to {c.card_serial}, not a card signing certificate of theirs")
        followed = [obs.cert(s) for s in sorted(c.followed())]
        kinds = sorted(f.kind.value for f in followed if f is not None and f.profile is Profile.CARD and f.person == c.person)
        want = sorted(k.value for k in world.variants.phone_linkage.follows(c.kind))
        signing = [f.serial for f in followed if f is not None and f.kind is Kind.SIGNING]
        if kinds != want or len(followed) != len(want) or (signing and signing != [c.card_serial]):
            got = "nothing reported (read as its card signing certificate)" if c.follows is None else str(sorted(c.follows))
            out.append(
                f"phone {c.kind.value} certificate {c.serial} of {c.person} (linked to {c.card_serial}) follows {got}, "
                f"not the card {' and '.join(want)} certificate(s) it was issued with ({world.variants.phone_linkage.value})"
            )
    return out


def _followed(obs: Observation, c: CertView) -> list[CertView]:
    """The card certificates on record that phone certificate c follows."""
    return [f for s in sorted(c.followed()) if (f := obs.cert(s)) is not None]


@_state("phone_expiry_is_card_expiry", "VAL-1", "VAL-2")
def _expiry(world: World, obs: Observation) -> list[str]:
    """A phone certificate expires exactly when the earliest card certificate it follows does; with the variant
    card_found_fresh_expiry, one re-linked to a card signing certificate issued no earlier than itself (resumed after a
    found card, ASM-CARD-FOUND) may expire before it, never after."""
    out = []
    for c in _phone_certs(obs):
        followed = _followed(obs, c)
        if not followed:
            continue
        first = min(followed, key=lambda f: (f.expiry, f.serial))
        relinked = any(f.kind is Kind.SIGNING and f.issued_at >= c.issued_at for f in followed)
        if c.expiry == first.expiry or (world.variants.card_found_fresh_expiry and relinked and c.expiry < first.expiry):
            continue
        out.append(f"phone certificate {c.serial} expires at {c.expiry}, its card certificate {first.serial} at {first.expiry}")
    return out


@_state("serials_unique", "CA-2")
def _unique(world: World, obs: Observation) -> list[str]:
    """No two certificates, card or phone, share a serial number."""
    count: dict[int, int] = defaultdict(int)
    for c in obs.certs:
        count[c.serial] += 1
    return [f"serial {s} is used by {n} certificates" for s, n in count.items() if n > 1]


@_state("cascade_within_delay", "REV-2")
def _cascade(world: World, obs: Observation) -> list[str]:
    """No phone certificate is in force once the cascade delay has passed since a card certificate it follows was revoked."""
    delay = world.variants.cascade_delay_minutes
    out = []
    for c in _phone_certs(obs):
        for card in _followed(obs, c):
            if (
                card.status is CertStatus.REVOKED
                and card.reason in CASCADING_REASONS
                and card.revoked_at is not None
                and obs.now >= card.revoked_at + delay
                and c.status is not CertStatus.REVOKED
            ):
                out.append(
                    f"phone certificate {c.serial} not revoked though card certificate {card.serial} was revoked at {card.revoked_at}"
                )
    return out


@_state("card_hold_holds_phone", "SUS-2")
def _card_hold(world: World, obs: Observation) -> list[str]:
    """While a card certificate is suspended, no phone certificate that follows it is in force."""
    out = []
    for c in _phone_certs(obs):
        for card in _followed(obs, c):
            if card.status is CertStatus.SUSPENDED and c.in_force(obs.now):
                out.append(f"phone certificate {c.serial} active while card certificate {card.serial} is suspended")
    return out


@_state("pin_counter_consistent", "PIN-3")
def _pin_counter(world: World, obs: Observation) -> list[str]:
    """A PIN is locked exactly when no tries are left, and never has more tries than its limit."""
    out = []
    for s in obs.slots:
        limit = max_tries(world, s.kind)
        if not 0 <= s.tries_left <= limit:
            out.append(f"{s.phone} {s.kind.value} PIN has {s.tries_left} tries left (limit {limit})")
        if (s.pin_status is PinStatus.LOCKED) != (s.tries_left == 0):
            out.append(f"{s.phone} {s.kind.value} PIN is {s.pin_status.value} with {s.tries_left} tries left")
    return out


@_state("old_revoked_before_new_issued", "ISS-4")
def _old_before_new(world: World, obs: Observation) -> list[str]:
    """Of two phone certificates of one person and kind, the older was revoked or expired when the newer was issued."""
    by: dict[tuple[str, Kind], list[CertView]] = defaultdict(list)
    for c in _phone_certs(obs):
        by[(c.person, c.kind)].append(c)
    out = []
    for certs in by.values():
        certs.sort(key=lambda c: (c.issued_at, c.serial))
        for old, new in itertools.pairwise(certs):
            gone = (old.revoked_at is not None and old.revoked_at <= new.issued_at) or old.expiry <= new.issued_at
            if not gone:
                out.append(f"phone certificate {new.serial} issued at {new.issued_at} while {old.serial} was still live")
    return out


@_state("key_only_in_its_se", "ISS-5", "ISS-6")
def _key_in_se(world: World, obs: Observation) -> list[str]:
    """A key is in at most one applet slot, and only in the SE its certificate names, under that certificate."""
    out = []
    where: dict[str, list[str]] = defaultdict(list)
    for s in obs.slots:
        where[s.key].append(s.phone)
        cert = obs.cert(s.cert_serial)
        if cert is None or cert.profile is not Profile.PHONE:
            out.append(f"{s.phone} holds a {s.kind.value} key for unknown certificate {s.cert_serial}")
        elif cert.key != s.key or cert.se_id != s.se_id or cert.kind is not s.kind:
            out.append(f"{s.phone} holds key {s.key} under certificate {cert.serial}, which certifies {cert.key} in {cert.se_id}")
    out += [f"key {k} is in several SEs: {p}" for k, p in where.items() if len(p) > 1]
    return out


@_state("certified_against_own_commitment", "ISS-6", "ISS-2")
def _commitment(world: World, obs: Observation) -> list[str]:
    """Every phone certificate was issued for a key uploaded with the R of its own application's S."""
    return [f"phone certificate {c.serial} was issued although H(R) != S" for c in _phone_certs(obs) if c.commitment_ok is False]


@_state("status_published_on_own_profile", "CA-4", "REV-4", "SP-1")
def _published(world: World, obs: Observation) -> list[str]:
    """Revoked and suspended certificates are on their own profile's CRL/OCSP only; active ones on none."""
    out = []
    for c in obs.certs:
        other = Profile.CARD if c.profile is Profile.PHONE else Profile.PHONE
        listed = {st for (p, s, st) in obs.published if s == c.serial and p is c.profile}
        if c.status is CertStatus.ACTIVE and listed:
            out.append(f"active certificate {c.serial} is listed on the {c.profile.value} CRL")
        elif c.status is not CertStatus.ACTIVE and listed != {c.status}:
            out.append(
                f"{c.status.value} certificate {c.serial} is listed as {sorted(x.value for x in listed)} on the {c.profile.value} CRL"
            )
        if any(s == c.serial and p is other for (p, s, _st) in obs.published):
            out.append(f"{c.profile.value} certificate {c.serial} is listed on the {other.value} CRL")
    return out


@_state("linkage_names_se_of_live_certs", "LNK-6", "PIN-4")
def _linkage(world: World, obs: Observation) -> list[str]:
    """For each live phone certificate, the JPKI system records its SE-ID against its card signing serial."""
    out = []
    for c in _phone_certs(obs):
        linked = obs.linkage.get(c.card_serial) if c.card_serial is not None else None
        if c.live(obs.now) and linked != c.se_id:
            out.append(f"card serial {c.card_serial} is linked to {linked}, but phone certificate {c.serial} is in {c.se_id}")
    return out


# --- transition invariants ----------------------------------------------------------------------------


@_step("revoked_stays_revoked", "REV-4", quiet_on_unchanged_refusal=True)
def _revoked_final(world: World, pre: Observation, a: A.Action, o: Outcome, post: Observation) -> list[str]:
    """A revoked certificate stays revoked, and no certificate record disappears."""
    if post is pre:
        return []  # the same observation (a refusal that changed nothing): every record is still there, as it was
    out = []
    for c in pre.certs:
        after = post.cert(c.serial)
        if after is None:
            out.append(f"certificate {c.serial} vanished from the records")
        elif c.status is CertStatus.REVOKED and after.status is not CertStatus.REVOKED:
            out.append(f"revoked certificate {c.serial} became {after.status.value}")
    return out


@_step("suspended_signing_never_resumes", "SUS-3", quiet_on_unchanged_refusal=True)
def _signing_never_resumes(world: World, pre: Observation, a: A.Action, o: Outcome, post: Observation) -> list[str]:
    """A suspended signing certificate (card or phone) never becomes active again."""
    if post is pre:
        return []  # the same observation: a suspended certificate is still suspended
    out = []
    for c in pre.certs:
        after = post.cert(c.serial)
        if c.kind is Kind.SIGNING and c.status is CertStatus.SUSPENDED and after is not None and after.status is CertStatus.ACTIVE:
            out.append(f"suspended {c.profile.value} signing certificate {c.serial} resumed on {a.name}")
    return out


def _key_use(a: A.Action) -> tuple[str, Kind] | None:
    if isinstance(a, A.Sign):
        return a.phone, Kind.SIGNING
    if isinstance(a, A.Authenticate):
        return a.phone, Kind.AUTH
    return None


@_step("locked_pin_admits_no_key_use", "PIN-3", "PIN-2", quiet_on_unchanged_refusal=True)
def _locked(world: World, pre: Observation, a: A.Action, o: Outcome, post: Observation) -> list[str]:
    """Key use succeeds only if the PIN was set and not locked before the step."""
    use = _key_use(a)
    if use is None or not o.ok:
        return []
    slot = pre.slot(*use)
    if slot is None or slot.pin_status is not PinStatus.SET:
        return [f"{a.name} on {use[0]} accepted with PIN {slot.pin_status.value if slot else 'absent'}"]
    return []


@_step("verifier_accepts_only_in_force", "REV-5", "SUS-4", "VAL-3", "DEL-3", quiet_on_unchanged_refusal=True)
def _verifier(world: World, pre: Observation, a: A.Action, o: Outcome, post: Observation) -> list[str]:
    """A verifier accepts only a certificate that was in force (active, unexpired) at that time."""
    if not o.ok:
        return []
    use = _key_use(a)
    if use is not None:
        slot = pre.slot(*use)
        serial = slot.cert_serial if slot else None
    elif isinstance(a, A.UseCard):
        serial = pre.current_card.get((a.person, a.kind))
    elif isinstance(a, A.VerifyCertificate):
        # The serial the system's verifier names (its own). One the records do not hold is an UNKNOWN_CERTIFICATE the
        # step's outcome already differs on (SP-1, CA-4); this invariant judges the status of the certificates it has.
        serial = o.details.get("serial")  # type: ignore[assignment]
        if not isinstance(serial, int) or pre.cert(serial) is None:
            return []
    else:
        return []
    cert = pre.cert(serial) if serial is not None else None
    if cert is None or not cert.in_force(pre.now):
        state = "unknown" if cert is None else ("expired" if pre.now >= cert.expiry else cert.status.value)
        return [f"{a.name} accepted with certificate {serial}, which was {state}"]
    return []


@_step("pin_initialisation_only_on_linked_se", "PIN-4", "LNK-6", quiet_on_unchanged_refusal=True)
def _pin_init(world: World, pre: Observation, a: A.Action, o: Outcome, post: Observation) -> list[str]:
    """PIN initialisation succeeds only on the SE recorded for the person's card signing certificate."""
    if not isinstance(a, A.InitialisePin) or not o.ok:
        return []
    card = pre.current_card.get((a.person, Kind.SIGNING))
    se = world.phone(a.phone).se_id
    if card is None or pre.linkage.get(card) != se:
        return [f"PIN initialised on {a.phone} ({se}); card serial {card} is linked to {pre.linkage.get(card) if card else None}"]
    return []


_WHOLE_SE = (A.PrepareApplet, A.FactoryReset)  # ISS-8 and DEL-2 act on the whole SE they target


@_step("deletion_touches_only_its_target", "DEL-1", "MCH-4", "REV-1", quiet_on_unchanged_refusal=True)
def _deletion_scope(world: World, pre: Observation, a: A.Action, o: Outcome, post: Observation) -> list[str]:
    """A step changes applet data only on the phone it targets, and deletes only revoked certificates' data."""
    if post is pre:
        return []  # the same observation: every slot holds what it held
    target = getattr(a, "phone", None)
    after = {(s.phone, s.kind): s for s in post.slots}
    out = []
    for s in pre.slots:
        now = after.get((s.phone, s.kind))
        if now is not None and now.cert_serial == s.cert_serial:
            continue  # kept (its PIN state may change)
        if s.phone != target:
            out.append(f"{a.name} on {target} removed or replaced {s.phone}'s {s.kind.value} data (certificate {s.cert_serial})")
        elif now is None and not isinstance(a, _WHOLE_SE):
            cert = post.cert(s.cert_serial)
            if cert is not None and cert.live(post.now):
                out.append(f"{a.name} deleted {s.phone}'s {s.kind.value} key while certificate {s.cert_serial} is live")
    return out


@_step("time_never_goes_back", "ISS-7", quiet_on_unchanged_refusal=True)
def _time(world: World, pre: Observation, a: A.Action, o: Outcome, post: Observation) -> list[str]:
    """The clock never runs backwards, and only AdvanceTime moves it."""
    if post.now < pre.now:
        return [f"time went from {pre.now} back to {post.now}"]
    if post.now != pre.now and not isinstance(a, A.AdvanceTime):
        return [f"{a.name} moved the clock from {pre.now} to {post.now}"]
    return []


# --- running them ---------------------------------------------------------------------------------------


def check_state(world: World, obs: Observation) -> list[Violation]:
    """Every state invariant's violations on this observation."""
    return [Violation(invariant=inv.name, reqs=inv.reqs, message=msg) for inv in STATE_INVARIANTS.values() for msg in inv.check(world, obs)]


def check_transition(
    world: World, pre: Observation, action: A.Action, outcome: Outcome, post: Observation, *, states: bool = True
) -> list[Violation]:
    """Every transition invariant's violations on this step, then (unless states=False) the state invariants on post."""
    # A refusal that changed nothing observed is judged only by the invariants that can fire on one (none today).
    invariants = LOUD_ON_UNCHANGED_REFUSAL if post is pre and not outcome.ok else TRANSITION_INVARIANTS.values()
    found = [
        Violation(invariant=inv.name, reqs=inv.reqs, message=msg)
        for inv in invariants
        for msg in inv.check(world, pre, action, outcome, post)
    ]
    # The explorer passes states=False for a state it has already checked: state invariants are a function of post alone.
    return found + check_state(world, post) if states else found


def invariant_names() -> tuple[str, ...]:
    """All invariant names, state ones first."""
    return (*STATE_INVARIANTS, *TRANSITION_INVARIANTS)


LOUD_ON_UNCHANGED_REFUSAL: tuple[TransitionInvariant, ...] = tuple(
    inv for inv in TRANSITION_INVARIANTS.values() if not inv.quiet_on_unchanged_refusal
)
"""The transition invariants that may fire on a refusal that changed nothing observed (check_transition runs only these
on one)."""
