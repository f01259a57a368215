"""The decisions' default probabilities, in a module that imports nothing.

The engine (`shortlist`, `sequential`), the CLI flags and the platform's `EngineConfig`
all read them from here; the platform's resources must not import the engine modules
(they import scipy) just to know a default.
"""

SHORTLIST_TARGET = 0.9  # the shortlist holds a near-best model with this probability
STOP_PROBABILITY = 0.9  # `mnc next` says "stop" once the tried models reach it
