"""Evaluation: pure metrics (``molmo2.eval.metrics``) for Molmo2's grounding, counting, tracking and QA
benchmarks, reproducing the official numbers (evaluation.md) with the known quirks behind a switch;
task adapters (``molmo2.eval.tasks``, one file per benchmark), the resumable runner
(``molmo2.eval.runner.evaluate``) and Markdown/HTML reports (``molmo2.eval.report``).

Importing this package is cheap (no torch, no scipy until a metric needs it).
"""

from molmo2.eval.metrics import *  # noqa: F403
from molmo2.eval.metrics import __all__  # noqa: F401
