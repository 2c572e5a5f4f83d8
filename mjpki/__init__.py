"""mjpki: a conformance suite for smartphone JPKI (My Number card certificates on phones)."""

__version__ = "0.1.0"
