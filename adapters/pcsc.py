"""The applet-level adapter for any PC/SC reader (pyscard): a card in a reader, or a phone's SE served by `mjpki serve-se`.

    from mjpki.adapters.pcsc import PcscApplet, list_readers
    print(list_readers())                     # what pcscd sees
    card = PcscApplet("Virtual PCD 00 00")    # exact name, or a substring naming exactly one reader
    card.transmit(bytes.fromhex("00A4040C0AD392F000260100000001"))

pyscard (`pip install -e '.[pcsc]'`, which builds against libpcsclite-dev with swig) and a running pcscd are needed;
without them constructing an adapter raises AppletAdapterError saying what is missing.
"""

from __future__ import annotations

from typing import Any

from mjpki.adapters.applet import AppletAdapterError

__all__ = ["PcscApplet", "list_readers", "find_reader", "pyscard_available"]


def pyscard_available() -> bool:
    """Whether pyscard can be imported (it is the optional `pcsc` extra)."""
    try:
        import smartcard.System  # noqa: F401
    except ImportError:
        return False
    return True


def _scard() -> Any:
    try:
        from smartcard import scard
    except ImportError as exc:
        raise AppletAdapterError(
            "pyscard is not installed: pip install -e '.[pcsc]' (needs swig, gcc and libpcsclite-dev; scripts/pcsc.sh install)"
        ) from exc
    return scard


def list_readers() -> list[str]:
    """The names of the readers pcscd offers now; AppletAdapterError if pcscd cannot be reached."""
    scard = _scard()
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise AppletAdapterError(f"cannot reach pcscd ({scard.SCardGetErrorMessage(hresult)}): is it running? (scripts/pcsc.sh start)")
    try:
        hresult, names = scard.SCardListReaders(context, [])
        if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if hresult != scard.SCARD_S_SUCCESS:
            raise AppletAdapterError(f"cannot list the PC/SC readers: {scard.SCardGetErrorMessage(hresult)}")
        return list(names)
    finally:
        scard.SCardReleaseContext(context)


def find_reader(name: str, readers: list[str] | None = None) -> str:
    """The reader called `name`, or else the only one whose name contains it; AppletAdapterError listing the readers if none or several."""
    available = list_readers() if readers is None else readers
    if name in available:
        return name
    matches = [r for r in available if name.lower() in r.lower()]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(repr(r) for r in available) or "none"
    if not matches:
        raise AppletAdapterError(f"no PC/SC reader matches {name!r}; available readers: {shown}")
    raise AppletAdapterError(f"{name!r} matches several readers ({', '.join(map(repr, matches))}): name one exactly")


class PcscApplet:
    """An applet in a PC/SC reader, driven through pcscd with pyscard; implements mjpki.adapters.applet.AppletAdapter."""

    def __init__(self, reader: str, *, unpower_on_close: bool = False, unpower_on_reset: bool = False) -> None:
        """Connect (shared mode, T=0 or T=1) to the card in the reader named (see find_reader).

        unpower_on_close: power the card off when closing (pyscard's own default) instead of leaving it powered.
        unpower_on_reset: reset() powers the card off and on (a cold reset) instead of a warm reset.
        """
        scard = _scard()
        self._scard = scard
        self.reader = find_reader(reader)
        self._unpower_on_close = unpower_on_close
        self._unpower_on_reset = unpower_on_reset
        hresult, self._context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            raise AppletAdapterError(f"cannot reach pcscd: {scard.SCardGetErrorMessage(hresult)}")
        self._card: Any = None
        self._protocol = 0
        try:
            self._connect()
        except AppletAdapterError:
            scard.SCardReleaseContext(self._context)
            raise

    def __repr__(self) -> str:
        return f"PcscApplet({self.reader!r})"

    @property
    def name(self) -> str:
        """The reader's name."""
        return self.reader

    @property
    def atr(self) -> bytes:
        """The card's ATR as pcscd reports it."""
        scard = self._scard
        hresult, _reader, _state, _protocol, atr = scard.SCardStatus(self._handle())
        if hresult != scard.SCARD_S_SUCCESS:
            raise AppletAdapterError(f"{self.reader}: SCardStatus failed: {scard.SCardGetErrorMessage(hresult)}")
        return bytes(atr)

    def _handle(self) -> Any:
        if self._card is None:
            raise AppletAdapterError(f"{self.reader}: the adapter is closed")
        return self._card

    def _connect(self) -> None:
        scard = self._scard
        hresult, card, protocol = scard.SCardConnect(
            self._context, self.reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        )
        if hresult != scard.SCARD_S_SUCCESS:
            raise AppletAdapterError(f"{self.reader}: cannot connect to the card: {scard.SCardGetErrorMessage(hresult)}")
        self._card, self._protocol = card, protocol

    def _reconnect(self, disposition: int) -> None:
        scard = self._scard
        hresult, protocol = scard.SCardReconnect(
            self._handle(), scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1, disposition
        )
        if hresult != scard.SCARD_S_SUCCESS:
            raise AppletAdapterError(f"{self.reader}: reconnect failed: {scard.SCardGetErrorMessage(hresult)}")
        self._protocol = protocol

    def transmit(self, apdu: bytes) -> bytes:
        """SCardTransmit of the APDU as given; response data || SW."""
        scard = self._scard
        command = list(bytes(apdu))
        pci = scard.SCARD_PCI_T0 if self._protocol == scard.SCARD_PROTOCOL_T0 else scard.SCARD_PCI_T1
        hresult, response = scard.SCardTransmit(self._handle(), pci, command)
        if hresult == scard.SCARD_W_RESET_CARD:
            # Another handle reset the card: the command never reached it. Acknowledge the reset and send it once more.
            self._reconnect(scard.SCARD_LEAVE_CARD)
            hresult, response = scard.SCardTransmit(self._handle(), pci, command)
        if hresult != scard.SCARD_S_SUCCESS:
            raise AppletAdapterError(f"{self.reader}: SCardTransmit failed: {scard.SCardGetErrorMessage(hresult)}")
        if len(response) < 2:
            raise AppletAdapterError(f"{self.reader}: a response of {len(response)} bytes has no status word")
        return bytes(response)

    def reset(self) -> None:
        """A warm reset (SCARD_RESET_CARD), or a power cycle with unpower_on_reset."""
        scard = self._scard
        self._reconnect(scard.SCARD_UNPOWER_CARD if self._unpower_on_reset else scard.SCARD_RESET_CARD)

    def close(self) -> None:
        """Disconnect (leaving the card powered unless unpower_on_close) and release the PC/SC context."""
        scard = self._scard
        if self._card is not None:
            card, self._card = self._card, None
            scard.SCardDisconnect(card, scard.SCARD_UNPOWER_CARD if self._unpower_on_close else scard.SCARD_LEAVE_CARD)
            scard.SCardReleaseContext(self._context)
