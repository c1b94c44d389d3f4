"""report stage: ``r2d report RUN_DIR [--compare OTHER_RUN_DIR ...]`` turns ``r2d eval`` output into
report.md and a self-contained report.html.

Modules: ``rundata`` (read a run directory), ``stats`` (Wilson, exact McNemar, Newcombe paired
difference), ``tables`` (the numbers), ``plots`` (PNG figures), ``build`` (the sections), ``render``
(Markdown/HTML), ``cli``.
"""
