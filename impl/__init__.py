"""The reference implementation: the smartphone JPKI system built from real parts, the suite's default system under test.

`system.ReferenceSystem` carries out every spec action and answers in the spec's vocabulary, with: the JPKI CAs,
X.509 certificates, CRLs and OCSP (`ca`); the JPKI system's records in SQLite (`records`); the phone's GP-SE with the
JPKI applet as an APDU processor (`se`), its APDU interface as data (`se_apdu`) and short-APDU parsing (`apdu`);
SCP03 (`scp03`) and the TSMs' side of the SE (`se_tsm`); and `mjpki serve-se`, the SE served to pcscd (`serve_se`).
"""
