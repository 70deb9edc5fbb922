"""Benchmarks of zt-inventory against the emulator on loopback.

``python -m bench`` runs every scenario on SQLite and PostgreSQL, prints a table per scenario
and writes ``bench/RESULTS.md``. Each measurement runs in processes of its own: the emulator
(the ``zt-inventory emulator`` command) in one, the sync or the raw baseline in another
(``bench.child``), so neither shares a GIL or a resident set with the code being measured. The
baseline is always measured in the same run, on the same machine, because shared machines
drift. The bench uses the product's public seams only.

Modules:

- ``run`` (the command line), ``outcome`` (sizes, a scenario's outcome, the shared context);
- ``scenarios/`` (one module per scenario: what runs, and the targets it judges);
- ``report`` (markdown tables and RESULTS.md) and ``prose`` (what each scenario measured,
  and why a target was missed);
- ``procs`` (the emulator process and measured child runs), ``scratch`` (scratch databases,
  their sizes, the write counter), ``machine`` (machine facts);
- ``child`` (the measured process's entry point), ``baseline`` (the raw baseline);
- ``emulator_scale`` (a stand-alone check of the emulator's own scale).
"""
