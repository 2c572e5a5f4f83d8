"""mjpki: a conformance suite for smartphone JPKI (My Number card certificates on phones).

The `mjpki` command (`cli`) and the pytest plugin (`pytest_plugin`, `suite`) run the conformance run (`conformance`):
the named scenarios (`scenarios`) and generated runs (`strategies`) in lockstep with the spec (`lockstep`), a verdict
per requirement, known failures apart (`known_failures`), a trace per failure, reduced step by step (`minimise`).
Scenarios also run on the spec alone (`runner`); traces replay on a system in lockstep (`replay`), render as step
tables and sequence diagrams (`render`, `mermaid`) and become standalone pytest files (`standalone`); `adapterspec`
resolves `module:factory` names. The applet-level run and its tools sit beside these. The spec, the properties, the
reference implementation and the adapters are the packages spec, properties, impl and adapters.
"""

__version__ = "0.1.0"
