"""The Bench tab: a load test of the selected server (or the configured endpoint), swept over
concurrency levels, with live progress, the results table, plots against an earlier run of the
same model, and export (`panel`). `form` holds its settings, `results` the progress bars and
the table, `plots` the two plots; the work itself is `core.bench`'s.

May import: core, textual, textual_plotext, `widgets.worker_errors`. Never screens,
controllers or the App.
"""
