"""``voicebot demo``'s conversation: the pipeline on loopback with a scripted lead.

``scenarios`` (the bundled leads and the outcome each must reach), ``call``
(one conversation: embedded Redis, the call server, the Exotel-like caller),
``report`` (live lines, the latency table, JSON/PNG/WAV per call).
"""

from server.demo.call import DemoCall, DemoTurn, run_demo_call
from server.demo.scenarios import DEFAULT, SCENARIOS, Expected, Scenario

__all__ = ["DEFAULT", "SCENARIOS", "DemoCall", "DemoTurn", "Expected", "Scenario",
           "run_demo_call"]
