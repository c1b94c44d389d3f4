"""report stage: ``r2d report RUN_DIR [--compare OTHER_RUN_DIR ...]`` turns ``r2d eval`` output into
report.md and a self-contained report.html.

Modules: ``rundata`` (read a run directory), ``tables`` (the numbers; statistics from ``r2d.stats``), ``plots`` (PNG figures), ``build`` (the sections), ``render``
(Markdown/HTML), ``cli``.
"""
