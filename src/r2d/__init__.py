"""r2d: Reasoning-to-Defend. Safety-aware reasoning with pivot tokens, end to end.

Pipeline: data (SwaRD synthesis) -> training (SwaRD + CPO) -> inference (backends, policies)
-> eval (benchmarks, attacks, judges, defenses) -> report.
"""

__version__ = "0.1.0"
