"""The requirement catalogue: every requirement ID the suite cites, in the project's own words."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["REQUIREMENTS", "Area", "Requirement", "conformance_ids", "requirement"]


class Area(Enum):
    """The area a requirement belongs to (the ID prefix)."""

    ACT = "Actors and components"
    LNK = "Linkage and cardinality"
    VAL = "Validity"
    CA = "Certificate authority and profiles"
    ISS = "Issuance"
    PIN = "PIN"
    REV = "Revocation"
    SUS = "Suspension"
    MCH = "Model change"
    DEL = "Deletion and factory reset"
    ACL = "Access control"
    SP = "Service providers and verification"
    OPS = "Operations"
    HIST = "Earlier design, for reference"


@dataclass(frozen=True, slots=True, kw_only=True)
class Requirement:
    """One requirement: a stable ID, its statement, and where the sources say it."""

    id: str  # e.g. "LNK-3"
    area: Area
    title: str  # a few words
    statement: str  # one to three sentences, in the project's own words
    sources: tuple[str, ...]  # seed references as REQUIREMENTS.md gives them
    assumption: str | None = None  # the model's assumption, where REQUIREMENTS.md states one
    variant: str | None = None  # the variant name and its default, if any
    note: str | None = None  # remarks, including where REQUIREMENTS.md and the seeds differ


def _catalogue(entries: tuple[Requirement, ...]) -> dict[str, Requirement]:
    """Index the entries by ID, refusing a repeated ID or an ID whose prefix is not its area."""
    out: dict[str, Requirement] = {}
    for req in entries:
        if req.id in out:
            raise ValueError(f"duplicate requirement ID {req.id!r}")
        prefix, _, number = req.id.partition("-")
        if prefix != req.area.name or not number.isdigit():
            raise ValueError(f"requirement ID {req.id!r} does not match its area {req.area.name}")
        out[req.id] = req
    return out


REQUIREMENTS: dict[str, Requirement] = _catalogue(
    (
        # --- Actors and components -------------------------------------------------------------
        Requirement(
            id="ACT-1",
            area=Area.ACT,
            title="The parts of the system",
            statement=(
                "The model is made of: the person; the My Number card holding the card certificates; "
                "the phone (device) with its SE; the JPKI applet; the phone app (the Mynaportal app); "
                "the SP-TSM and the SEI-TSM; the JPKI system (CA, CRL, OCSP and the linkage records); "
                "a push service; the call centre; and the service providers that act as verifiers."
            ),
            sources=("001 p.10", "002 p.5"),
            note=(
                "001 p.10 still calls the app a separate 'JPKIスマホアプリ' from Google Play; 002 "
                "(スマホアプリの概要) has the JPKI functions added to the Mynaportal app. Same part, "
                "later name; not a conflict."
            ),
        ),
        Requirement(
            id="ACT-2",
            area=Area.ACT,
            title="What each TSM does",
            statement=(
                "The SEI-TSM keeps the JPKI applet and loads it into the SE, going through the SE's "
                "issuer security domain (ISD) to place it in an application-provider security domain "
                "(APSD). The SP-TSM takes in users' applications and personalises the SE with keys, "
                "certificates and PINs."
            ),
            sources=("000", "001 p.10-11"),
        ),
        Requirement(
            id="ACT-3",
            area=Area.ACT,
            title="Which phones qualify",
            statement=(
                "A phone is eligible only if it has all three: a GP-SE that can install Java applets, "
                "NFC able to read the card, and a supported OS, which at launch means Android 9 or "
                "newer. The sources do not support iOS."
            ),
            sources=('002 "動作対象"',),
            note=(
                "002 動作対象 also names Chrome as the browser, requires the phone to be a J-LIS "
                "'マイナンバーカード対応NFCスマートフォン', and asks for a GP-SE with the ISO18092 / "
                "JIS X 6319-4 functions; 001 p.10 notes the card is read as NFC Type B. 001 p.8 aims "
                "at iPhone 'early' ('iPhoneについても早期実現を目指す'), so no iOS is a launch state."
            ),
        ),
        # --- Linkage and cardinality -----------------------------------------------------------
        Requirement(
            id="LNK-1",
            area=Area.LNK,
            title="No phone certificate without a card signing certificate",
            statement=(
                "Phone certificates are issued only to someone whose card signing certificate exists "
                "and is valid; a phone certificate can never stand alone without a card certificate "
                "behind it."
            ),
            sources=("002 p.11 #1", "001 policy 4"),
            note=(
                "002 p.11 #1 asks only that the card signing certificate be issued "
                "('カード用署名用電子証明書が発行されていることが必須'); its validity is checked in "
                "the issuance flow (001 p.15 step 2, 'カード用電子証明書の有効性確認')."
            ),
        ),
        Requirement(
            id="LNK-2",
            area=Area.LNK,
            title="Linked to the card signing certificate by serial",
            statement=(
                "Each phone certificate is tied, through its serial number, to the card signing "
                "certificate whose signature authorised the issuance."
            ),
            sources=("001 p.15", "002 p.11"),
            note=(
                "The seeds name the link target only as the card certificate in general: 002 p.11 #1 "
                "'カード用電子証明書に紐づけて管理する', law outline '個人番号カード用電子証明書と"
                "紐付けて管理'. That it is the signing one is inferred from the issuance flow (001 "
                "p.15), which starts from the card signing signature and carries "
                "'カード用電子証明書のシリアル番号'. So the seeds leave open whether revoking a card "
                "auth certificate also cascades (REV-2); 001 p.15 lists the linkage rule as an open issue "
                "('【課題】カード用電子証明書とスマホ用電子証明書の紐づけルール…の検討')."
            ),
            assumption=(
                "ASM-PHONE-LINKAGE: the link of LNK-2 is always recorded; which card certificates a phone "
                "certificate follows (revocation, suspension, expiry) is the variant."
            ),
            variant=(
                "phone_linkage (default card_signing: both phone certificates follow the card signing "
                "certificate; per_kind: each kind follows the card certificate of its kind; either: both follow both)"
            ),
        ),
        Requirement(
            id="LNK-3",
            area=Area.LNK,
            title="One phone certificate of each kind per person",
            statement=(
                "At any moment a person has no more than one phone signing certificate and no more "
                "than one phone auth certificate in force."
            ),
            sources=("001 policy 2", "002 law outline", "003 FAQ 3"),
        ),
        Requirement(
            id="LNK-4",
            area=Area.LNK,
            title="Both kinds live in one SE",
            statement=(
                "When a person holds both phone certificate kinds, the two sit in the same SE, i.e. "
                "on one phone per person; signing on one device and auth on another is not allowed."
            ),
            sources=("002 p.11 #2", "003 FAQ 3"),
        ),
        Requirement(
            id="LNK-5",
            area=Area.LNK,
            title="Either kind, or both",
            statement=(
                "A person may apply for the signing certificate only, the auth certificate only, or "
                "both; a kind applied for later goes into the SE that already holds the other."
            ),
            sources=("000 screens", "003"),
            assumption=("Applying for the missing kind on a different phone is handled as a model change (MCH), not as an addition."),
        ),
        Requirement(
            id="LNK-6",
            area=Area.LNK,
            title="SE-ID on record per card certificate",
            statement=(
                "For every card signing certificate, the JPKI system stores the SE-ID of the SE in "
                "which the phone key pair was generated when the phone certificate was issued."
            ),
            sources=("001 p.18",),
            note=(
                "001 p.18: 'カードに紐づけて、初期発行時に鍵ペア生成を実行したSEのSE識別IDを保持す"
                "る'; the figure keeps the card certificate serial, the phone certificate serial and "
                "the SE-ID together."
            ),
        ),
        # --- Validity --------------------------------------------------------------------------
        Requirement(
            id="VAL-1",
            area=Area.VAL,
            title="Phone expiry follows the card",
            statement=("A phone certificate expires on the same date as the card certificate it is linked to."),
            sources=("002 law outline", "002 p.11 #2"),
            assumption=(
                "It expires with the earliest card certificate it follows (phone_linkage). With "
                "card_found_fresh_expiry, a phone auth certificate resumed after a found card keeps its expiry "
                "and may expire before the re-issued card signing certificate it is re-linked to: then 'never later'."
            ),
            note=(
                "Conflicts with VAL-2 when a found card's signing certificate is re-issued: 003 FAQ 1 runs a "
                "certificate from its issue to the 5th birthday, while the resumed phone auth certificate keeps "
                "the expiry written in it (see docs/spec.md, where the sources disagree)."
            ),
            variant="card_found_fresh_expiry (default False: the re-issued certificate keeps the held one's expiry)",
        ),
        Requirement(
            id="VAL-2",
            area=Area.VAL,
            title="Card certificates last to the 5th birthday",
            statement=("A card certificate remains valid until the holder's fifth birthday counted from the date of issue."),
            sources=("003 FAQ 1",),
        ),
        Requirement(
            id="VAL-3",
            area=Area.VAL,
            title="Expired is not in force; renewal reissues",
            statement=("A certificate past its expiry is no longer in force, and renewal (更新) is carried out as a fresh issuance."),
            sources=("001 p.20 menu",),
        ),
        # --- Certificate authority and profiles ------------------------------------------------
        Requirement(
            id="CA-1",
            area=Area.CA,
            title="The existing JPKI CAs issue phone certificates",
            statement=(
                "No separate CA is created for phones: the existing signing CA issues phone signing "
                "certificates and the existing auth CA issues phone auth certificates, each using "
                "the very CA key it uses for card certificates."
            ),
            sources=("002 p.12",),
        ),
        Requirement(
            id="CA-2",
            area=Area.CA,
            title="Serial numbers never collide",
            statement="No phone certificate ever carries the same serial number as a card certificate.",
            sources=("002 p.12",),
        ),
        Requirement(
            id="CA-3",
            area=Area.CA,
            title="A profile of their own",
            statement=(
                "Phone certificates use their own profile, so certificate parameters show whether a "
                "certificate belongs to a phone or a card; the key usage is the same as for cards."
            ),
            sources=("002 p.12",),
            note=(
                "002 p.12 gives verifiers two ways to tell them apart: '電子証明書のパラメータにより"
                "識別' and 'マイナポータルアプリより応答されるパラメータにより識別'; REQUIREMENTS.md "
                "keeps only the first."
            ),
        ),
        Requirement(
            id="CA-4",
            area=Area.CA,
            title="Separate CRL and OCSP endpoints",
            statement=("Phone certificates and card certificates have different CRL distribution points and different OCSP URLs."),
            sources=("002 p.12",),
        ),
        Requirement(
            id="CA-5",
            area=Area.CA,
            title="RSA-2048 with PKCS#1 v1.5",
            statement="Key pairs are 2048-bit RSA, and signatures use RSASSA-PKCS1-v1_5.",
            sources=("001 p.12",),
            note=(
                "001 p.12 states these as the algorithms the GP-SE supports for JPKI "
                "('RSA2048bit ... 署名はRSASSA-PKCS#1_v1.5に対応'), alongside AES-128 for SCP03 "
                "and random-number generation."
            ),
        ),
        # --- Issuance --------------------------------------------------------------------------
        Requirement(
            id="ISS-1",
            area=Area.ISS,
            title="Online issuance signed with the card",
            statement=(
                "The person applies online from the phone app and never has to visit the municipal "
                "office. The application bears a signature made with the card signing certificate, "
                "which the phone reads from the card over NFC once the user has typed the card "
                "signing PIN."
            ),
            sources=("001 policy 2", "003"),
            note=(
                "001 policy 2 presupposes a card handed out at the municipal office after a "
                "face-to-face identity check ('自治体の窓口で対面による本人確認を行い交付された"
                "マイナンバーカードを保有していることが前提'); 002 p.11 adds that municipal offices do "
                "not take these applications at all ('市区町村窓口では申請を受け付けない')."
            ),
        ),
        Requirement(
            id="ISS-2",
            area=Area.ISS,
            title="Commitment S = H(R) and the signed application",
            statement=(
                "The SE draws a random R and computes its commitment S = H(R). The application sends "
                "S together with the card signature; the JPKI system checks that the card "
                "certificate is valid and the signature correct, accepts the application, and keeps S."
            ),
            sources=("001 p.15 ①-⑤",),
        ),
        Requirement(
            id="ISS-3",
            area=Area.ISS,
            title="SE-ID read, existing certificate looked up",
            statement=(
                "The JPKI system obtains the SE-ID and searches for a phone certificate linked to the "
                "serial number of the card certificate."
            ),
            sources=("001 p.15 ⑥-⑨",),
        ),
        Requirement(
            id="ISS-4",
            area=Area.ISS,
            title="An existing phone certificate is revoked first",
            statement=(
                "If no phone certificate is linked, or the linked one is already revoked, issuance "
                "goes straight on to key generation. If a linked one is not revoked, the user is "
                "asked to agree to its revocation, it is revoked, and only then does issuance go on: "
                "the old certificate is always revoked before the new one is issued."
            ),
            sources=("001 p.16 supplements 1-4",),
            note=(
                "001 p.16 supplement 4 treats a suspended old certificate as not revoked: for loss or "
                "theft, '利用者が一時保留を実施済み、あるいは利用者が一時保留していない' and "
                "'上記のいずれの場合も失効して鍵生成に進む'."
            ),
        ),
        Requirement(
            id="ISS-5",
            area=Area.ISS,
            title="Keys generated and kept in the SE",
            statement=(
                "The key pair is generated inside the SE, where the private key is stored and from "
                "which it never leaves. What the SE uploads is the public key and R."
            ),
            sources=("001 policy 4", "001 p.15"),
        ),
        Requirement(
            id="ISS-6",
            area=Area.ISS,
            title="Commitment checked, then certificate issued",
            statement=(
                "The JPKI system accepts the public key only if H(R) matches the S it kept for this "
                "same application. It then issues the phone certificate for that key, records the "
                "link between the card certificate serial and the SE-ID, and the certificate is "
                "written into the SE."
            ),
            sources=("001 p.15 ⑯-㉓",),
        ),
        Requirement(
            id="ISS-7",
            area=Area.ISS,
            title="Push notification, then register",
            statement=(
                "Issuance does not finish at once: after applying, the user gets a push notification "
                "and must tap 'register' to complete installation. For applications made between "
                "08:00 and 19:30 the push comes within minutes; for any other time it comes from "
                "about 08:00 the following morning."
            ),
            sources=("003",),
            assumption="The certificate cannot be used until registration has been completed.",
            note=(
                "The assumption is in fact stated by the seed, 003 FAQ 2: '登録の操作完了後に利用する"
                "ことができます'. 003 also says the window holds every day ('平日・土日祝日とも'); "
                "'おおむね翌8:00以降' does not say, for an application made between 00:00 and 08:00, "
                "whether that is the same morning or the next day."
            ),
        ),
        Requirement(
            id="ISS-8",
            area=Area.ISS,
            title="A leftover applet is removed",
            statement=(
                "Before anything is written, the app looks for a JPKI applet already in the SE (for "
                "instance one left on a second-hand phone) and deletes it."
            ),
            sources=("001 p.19",),
            note=(
                "001 p.19 places the check at the app's first launch, in the applet-preparation "
                "phase: 'JPKIアプレット存在チェック', '中古端末を使用した場合等で残留しているアプレット"
                "等を削除'."
            ),
        ),
        Requirement(
            id="ISS-9",
            area=Area.ISS,
            title="SCP03 to the SE, HTTPS to the phone",
            statement=(
                "Every personalisation step from the TSM to the SE runs inside an SCP03 secure "
                "channel using AES-128, and the TSM talks to the agent on the phone over HTTPS."
            ),
            sources=("001 policy 4", "001 p.12"),
        ),
        # --- PIN -------------------------------------------------------------------------------
        Requirement(
            id="PIN-1",
            area=Area.PIN,
            title="Phone PIN formats",
            statement=(
                "The phone signing PIN is 6 to 16 characters made of upper-case letters and digits; "
                "the phone auth PIN is 4 digits. Each is set on its own, apart from the card PINs."
            ),
            sources=("002 biometrics slide", "000", "003"),
        ),
        Requirement(
            id="PIN-2",
            area=Area.PIN,
            title="First PIN set via a hidden temporary PIN",
            statement=(
                "For the initial setting, the system computes a random temporary PIN of at most 16 "
                "bytes, sets it and blocks it, and hands it to the app, which holds it. The user "
                "enters the real PIN, the app requests an unblock, the temporary PIN is verified and "
                "the real PIN is set; the user never sees the temporary one."
            ),
            sources=("001 p.17",),
            note=(
                "001 p.17 runs this straight on from issuance step ㉓, in the same session while the "
                "card signature is still valid ('発行フローの続きとして一連のセッションで実行')."
            ),
        ),
        Requirement(
            id="PIN-3",
            area=Area.PIN,
            title="Lock after too many wrong PINs",
            statement=(
                "Wrong PIN entries are counted, and once a fixed number is reached the PIN locks and the key can no longer be used."
            ),
            sources=('003 "一定回数以上間違えるとロック"',),
            assumption=("The limits match the card: 5 wrong entries for signing, 3 for auth; a correct entry resets the counter."),
        ),
        Requirement(
            id="PIN-4",
            area=Area.PIN,
            title="PIN reset only on the holder's own SE",
            statement=(
                "Unlocking or resetting a PIN is done online and must be authorised by a card "
                "signature. It is allowed only on the SE whose SE-ID is on record for that card "
                "certificate, so no one can reset the PIN on another person's phone."
            ),
            sources=("001 p.18",),
            note=(
                "002's 利用手続イメージ slide says 'その他の手続 失効手続やパスワード設定等の手続は、"
                "マイナンバーカードを必要とせず、スマートフォンのみで完結', which read literally "
                "would need no card for PIN procedures; 001 p.18 requires a card signature for PIN "
                "initialisation ('...によってPIN初期化が実行できるものとする'). REQUIREMENTS.md follows "
                "001 p.18; the 002 line fits PIN change (PIN-5). 002 p.11 confirms lock release is "
                "online by the user, not at municipal offices."
            ),
        ),
        Requirement(
            id="PIN-5",
            area=Area.PIN,
            title="PIN change",
            statement="A user who knows the current PIN can replace it with a new one.",
            sources=("001 p.20 menu",),
            note=("001 p.20 only lists '暗証番号変更' in the menu; that the current PIN is needed is not written in the seeds."),
        ),
        Requirement(
            id="PIN-6",
            area=Area.PIN,
            title="Screen lock may stand in for the auth PIN",
            statement=(
                "The OS screen lock can replace the phone auth PIN: on Android 11 and later via OS "
                "PIN, pattern or biometrics, on Android 9 and 10 via biometrics only. Biometrics must "
                "be Class 3 and the primary authentication must be demanded at least every 72 hours; "
                "the phone signing certificate always needs its own PIN."
            ),
            sources=("002 biometrics slide",),
            note=(
                "002 also fixes the Class 3 limits (FAR at most 0.002%, i.e. 1 in 50,000; SAR at "
                "most 7%; IAR at most 7%), calls it '強' for Android 10 and earlier, and requires the "
                "BiometricPrompt API; REQUIREMENTS.md leaves these out."
            ),
        ),
        # --- Revocation ------------------------------------------------------------------------
        Requirement(
            id="REV-1",
            area=Area.REV,
            title="Revocation from the phone alone",
            statement=(
                "The holder can revoke a phone certificate with just the phone, no card, by entering "
                "the phone PIN; revoking from the phone also erases the certificate and keys from "
                "the SE."
            ),
            sources=("001 policy 2", "003"),
            note=("003 only says 'パスワードを入力します' without naming which password; that it is the phone PIN is an inference."),
        ),
        Requirement(
            id="REV-2",
            area=Area.REV,
            title="Card revocation cascades to the phone",
            statement=(
                "Revoking a card certificate also revokes the phone certificates linked to it. "
                "Because the JPKI system checks the links at intervals, the cascade lands after a "
                "bounded delay rather than instantly."
            ),
            sources=("002 p.11 #3", "002 law outline"),
            note=(
                "002 p.11 #3: 'J-LIS側で紐づけ状況を定期的に確認し、一定期間後に自動的に失効される'; "
                "no figure is given for the delay. See LNK-2 on which card certificate the link "
                "points to."
            ),
        ),
        Requirement(
            id="REV-3",
            area=Area.REV,
            title="Stopping use of the device",
            statement=(
                "Ceasing to use the device (model change, transfer, sale, disposal or loss) is a "
                "ground for revocation, and the holder has a duty to revoke, though no penalty "
                "attaches to it."
            ),
            sources=("002 law outline", "003"),
            note=(
                "003 also lists moving from Android to iPhone, trade-in and breakdown: "
                "'AndroidからiPhoneへの機種変更や、スマホの下取・売却、廃棄、故障などによって'. "
                "The law outline names '機種変更、譲渡、売買等'; loss comes from 001 p.22, as does "
                "'罰則の伴わない「義務」とする想定', which REQUIREMENTS.md does not cite."
            ),
        ),
        Requirement(
            id="REV-4",
            area=Area.REV,
            title="Revocation is final and published",
            statement=(
                "Once revoked, a certificate is never restored. Revocation status is published on "
                "the phone CRL and answered by the phone OCSP (see CA-4)."
            ),
            sources=("general PKI", "002 p.12"),
        ),
        Requirement(
            id="REV-5",
            area=Area.REV,
            title="Verifiers reject revoked, suspended or expired",
            statement=(
                "Verifiers turn down any signature or authentication made with a revoked, suspended "
                "or expired certificate, even when the key still sits on an old device. The design "
                "further calls for a technical measure against signing with the key of a revoked "
                "signing certificate."
            ),
            sources=("001 policy 4 last bullet", "001 p.24 note"),
            note=(
                "001 only promises to study that measure, not to build it: policy 4 "
                "'失効済みの署名用電子証明書に紐付く秘密鍵による電子署名を防止するための技術的措置に"
                "ついて検討する'; p.24 '電子署名を防止するための技術的措置について別途検討する'."
            ),
        ),
        # --- Suspension ------------------------------------------------------------------------
        Requirement(
            id="SUS-1",
            area=Area.SUS,
            title="Call centre suspends a lost phone",
            statement=(
                "If a phone is lost or stolen, the call centre places its phone certificates on hold "
                "(一時保留), around the clock on every day of the year."
            ),
            sources=("001 policy 4", "003"),
        ),
        Requirement(
            id="SUS-2",
            area=Area.SUS,
            title="Lost card: the hold reaches the phone",
            statement=(
                "When a card is lost, putting its card certificates on hold also puts the phone certificates linked to them on hold."
            ),
            sources=("003 lost-card section",),
            note=(
                "003 does not say this outright; it follows from the found-card instruction "
                "'マイナポータルアプリにてスマホ用電子証明書の一時利用停止の解除の手続を行ってくだ"
                "さい'. 003 also tells the holder to report a lost card at the municipal office of "
                "residence."
            ),
        ),
        Requirement(
            id="SUS-3",
            area=Area.SUS,
            title="Lifting a hold",
            statement=(
                "An auth certificate on hold can be released; a signing certificate on hold is never "
                "released but revoked, and a new one must be issued and registered again, for card "
                "and phone certificates alike. A found phone is released at the municipal office; "
                "after a found card the phone certificates are released in the app (phone auth "
                "resumes, phone signing is reissued and must be registered again)."
            ),
            sources=("003 lost-phone section", "003 lost-card section"),
            note=(
                "(1) For a found phone 003 makes the new signing certificate optional and the "
                "revocation an application: '署名用電子証明書は、失効申請した後、必要な場合は新たな"
                "証明書の発行申請をする必要があります'; only after a found card is it reissued "
                "automatically ('再発行されますので、あらためて利用登録を行ってください'). (2) "
                "Release at the municipal office ('お住まいの市区町村窓口で手続を行ってください') "
                "conflicts with 002 p.11, where phone procedures are online and "
                "'市区町村窓口では申請を受け付けない'. (3) No seed line extends the rule to card "
                "certificates; that is general JPKI practice. (4) Which expiry the re-issued card signing "
                "certificate gets is not said: 003 FAQ 1 suggests a fresh one, VAL-1 the old one (ASM-CARD-FOUND, "
                "variant card_found_fresh_expiry)."
            ),
        ),
        Requirement(
            id="SUS-4",
            area=Area.SUS,
            title="On hold means not in force",
            statement=("While on hold a certificate is not in force, and verifiers refuse it until the hold is lifted."),
            sources=(),
            note="REQUIREMENTS.md cites no seed; 003 calls the hold '一時利用停止'.",
        ),
        # --- Model change ----------------------------------------------------------------------
        Requirement(
            id="MCH-1",
            area=Area.MCH,
            title="Model change from the new phone alone",
            statement=(
                "A model change is completed on the new phone alone; nothing has to be done on the "
                "old one. The new phone's application carries the holder's consent to revoke the old "
                "phone's certificates, which are revoked within that same procedure."
            ),
            sources=("001 policy 2", "001 p.21", "002", "003"),
        ),
        Requirement(
            id="MCH-2",
            area=Area.MCH,
            title="Remote deletion by push to the old app",
            statement=(
                "After the revocation, the system pushes a deletion request to the app on the old "
                "phone, addressed with that old app's push token and not the token of the app now in "
                "use. The deletion only happens if the old phone comes online within 48 hours."
            ),
            sources=("001 p.25", "003"),
            note=(
                "003 also tells users to keep the old phone on and connected while working on the "
                "new one ('古いスマホの電源を入れて、ネットワークに接続した状態で新しいスマホで操作を"
                "行ってください'). 001 p.25 names FCM (one token per phone) and leaves open whether "
                "the TSM or the JPKI side registers the token."
            ),
        ),
        Requirement(
            id="MCH-3",
            area=Area.MCH,
            title="Remote deletion can fail",
            statement=(
                "Remote deletion may not succeed (old phone offline, push refused, app removed, "
                "token invalid, phone reset): the certificate stays revoked, but keys may be left in "
                "the old SE. The app warns the user, and a shop or the user can reset the phone."
            ),
            sources=("001 p.22-24",),
            note=(
                "Under the default of DEL-2 (003: 'スマートフォンの端末初期化では電子証明書は削除"
                "されません') the reset remedy of 001 p.23-24 (対策3) removes nothing; it only "
                "helps when factory_reset_wipes_se is True. The warning of 001 p.24 is given in the "
                "revocation flow on the new phone, before the deletion is tried "
                "('リモートでは削除されない可能性をアプリ上で注意喚起'); no seed has one after a failure."
            ),
            assumption=(
                "ASM-DELETION-WARNING: the steps that send a remote deletion answer deletion_warning=True; "
                "a failed deletion shows as AdvanceTime's deletions_failed."
            ),
        ),
        Requirement(
            id="MCH-4",
            area=Area.MCH,
            title="What a deletion removes",
            statement=(
                "A deletion can remove only the keys and certificate, or the applet as well; "
                "removing the applet is done through the SEI-TSM."
            ),
            sources=("001 p.25",),
        ),
        # --- Deletion and factory reset --------------------------------------------------------
        Requirement(
            id="DEL-1",
            area=Area.DEL,
            title="Deletion hits only its target",
            statement=("A deletion never removes anything but the data of the person and the SE it is aimed at."),
            sources=("001 p.25 (implied)",),
        ),
        Requirement(
            id="DEL-2",
            area=Area.DEL,
            title="Factory reset",
            statement=(
                "Whether a factory reset wipes the SE is a variant: the design study has the reset "
                "ask the SEI-TSM to erase the SE (countermeasure 3), while the service as launched "
                "says a reset leaves the certificate in place. In both settings a reset invalidates "
                "the app's push token."
            ),
            sources=("001 p.26", "003"),
            variant="factory_reset_wipes_se (default False, as launched)",
            note=(
                "The seeds disagree, as REQUIREMENTS.md records: 001 p.26 'ユーザによるスマートフォン"
                "の初期化時に、GP-SE内の情報を削除...することが技術的に可能' (needing Google's and "
                "the makers' help) and policy 4 '端末初期化により電子証明書や秘密鍵を削除する', "
                "against 003 'スマートフォンの端末初期化では電子証明書は削除されません'."
            ),
        ),
        Requirement(
            id="DEL-3",
            area=Area.DEL,
            title="Leftovers on a transferred phone",
            statement=(
                "On a phone that has changed hands, a revoked certificate may still be readable, and "
                "a signing certificate exposes the basic four personal data items; such a "
                "certificate must never verify."
            ),
            sources=("001 p.24 note",),
        ),
        # --- Access control --------------------------------------------------------------------
        Requirement(
            id="ACL-1",
            area=Area.ACL,
            title="Only the official app reaches the applet",
            statement=(
                "Only the official app may talk to the JPKI applet: the SE's access rule application "
                "(ARA) holds hashes of the permitted app signing certificates, and the access "
                "control enforcer hashes the calling app's certificate and refuses on a mismatch. "
                "The SEI-TSM loads these rules when it installs the applet."
            ),
            sources=("001 p.13",),
            note=(
                "001 p.13: the service provider draws up the hash list and registers it with the "
                "SEI-TSM beforehand; the enforcer sits inside the Open Mobile API."
            ),
        ),
        Requirement(
            id="ACL-2",
            area=Area.ACL,
            title="Return-URL whitelist",
            statement=(
                "Service providers reach phone certificates only through the official app, and only "
                "when their return URL is on the whitelist registered with J-LIS; the app sends "
                "results to whitelisted servers only."
            ),
            sources=("002 whitelist slides",),
        ),
        Requirement(
            id="ACL-3",
            area=Area.ACL,
            title="Ministerial approval for private verifiers",
            statement=(
                "A private-sector service provider needs ministerial approval before it may verify signatures made with phone certificates."
            ),
            sources=("002 p.11 #4",),
            note=(
                "002 p.11 #4 names the basis, the same as for card certificates: article 17(1)(6) "
                "of the JPKI Act ('公的個人認証法第17条第1項第6号の規定に基づく主務大臣認定')."
            ),
        ),
        # --- Service providers and verification ------------------------------------------------
        Requirement(
            id="SP-1",
            area=Area.SP,
            title="Verifier tells phone from card",
            statement=(
                "A verifier can distinguish a phone certificate from a card certificate (CA-3) and "
                "checks its status at the CRL or OCSP belonging to that kind (CA-4)."
            ),
            sources=(),
            note="REQUIREMENTS.md cites no seed; it builds on CA-3 and CA-4 (002 p.12).",
        ),
        Requirement(
            id="SP-2",
            area=Area.SP,
            title="Verifier-side linkage",
            statement=(
                "A verifier may, if it wants, keep its own link between a person's card auth "
                "certificate and that person's phone auth certificate."
            ),
            sources=("002 system changes #3",),
        ),
        # --- Operations ------------------------------------------------------------------------
        Requirement(
            id="OPS-1",
            area=Area.OPS,
            title="Call-centre hours",
            statement=("The call centre accepts suspensions at all hours, every day; other enquiries only in office hours."),
            sources=("003",),
            note=(
                "003 gives the office hours: weekdays 09:30-20:00, weekends and holidays "
                "09:30-17:30, on the My Number toll-free line, voice-guidance option 4 "
                "('受付時間は平日は9時30分から20時00分まで、土日祝は9時30分から17時30分まで'). Those are "
                "enquiry hours; 24/7 is stated for a lost or stolen phone only ('24時間365日対応'). No hours "
                "are given for a lost card on the same line, nor for the municipal office (002: '開庁時間')."
            ),
            assumption=("ASM-SERVICE-HOURS: every call-centre and office step at any hour of any day; only the push has hours (ISS-7)."),
        ),
        Requirement(
            id="OPS-2",
            area=Area.OPS,
            title="Push depends on time and reachability",
            statement=(
                "Whether and when a push notification arrives depends on the time of day (ISS-7) "
                "and on whether the device can be reached (MCH-3)."
            ),
            sources=(),
            note="REQUIREMENTS.md cites no seed; it refers to ISS-7 and MCH-3.",
        ),
        # --- Earlier design, for reference -----------------------------------------------------
        Requirement(
            id="HIST-1",
            area=Area.HIST,
            title="The earlier UICC sub-certificate design",
            statement=(
                "The early study put a 'sub-certificate', issued on the strength of the card's "
                "'main' certificate, into the UICC (SIM), with keys made on a J-LIS key-generation "
                "server and an access code sent to the user; the later design makes keys in the "
                "GP-SE (ISS-5). A model may offer the UICC as another SE type, but by default it must "
                "never generate keys outside the SE."
            ),
            sources=("004",),
            note=(
                "004 also reads the card for its auth certificate, not the signing one, to apply "
                "('利用者証明用電子証明書を利用するために個人番号カードを読取る'), and delivers "
                "keys over the mobile network; both differ from ISS-1 and ISS-5."
            ),
        ),
    )
)


def requirement(req_id: str) -> Requirement:
    """Return the catalogued requirement, or raise KeyError naming the close matches."""
    found = REQUIREMENTS.get(req_id)
    if found is not None:
        return found
    prefix = req_id.strip().partition("-")[0].upper()
    same_area = [rid for rid in REQUIREMENTS if rid.partition("-")[0] == prefix]
    if not same_area:
        areas = ", ".join(area.name for area in Area)
        raise KeyError(f"unknown requirement {req_id!r}; known areas are {areas}") from None
    known = same_area[0] if len(same_area) == 1 else f"{same_area[0]}..{same_area[-1]}"
    raise KeyError(f"unknown requirement {req_id!r}; {prefix} has {known}") from None


def conformance_ids() -> tuple[str, ...]:
    """Every ID a conformance run must cover: all but the HIST area, in catalogue order."""
    return tuple(rid for rid, req in REQUIREMENTS.items() if req.area is not Area.HIST)
