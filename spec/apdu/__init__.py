"""The applet-level spec: the GP-SE with the JPKI applet as a reader sees it, APDU by APDU (docs/apdu-interface.md).

Pure and deterministic, like the lifecycle spec beside it. `model.step(state, command, observed)` gives the answer
the interface demands, names the clause (`interface.RULES`) and requirement IDs behind it, and says what is wrong with
an observed answer; `abstraction.se_view` maps a state to the lifecycle spec's view of an SE (the refinement).
"""
