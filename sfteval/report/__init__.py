"""Reports: building one from item records (`build`), and rendering it (terminal, HTML, diff, gate, merge).

The report's data model lives in the core (`sfteval.core.report`, `sfteval.core.results`, `sfteval.core.run_info`),
so probes, the runner and every renderer share it without importing this package.
"""
