"""Benchmarks of zt-inventory against the emulator on loopback (issue 6).

``python -m bench`` runs every scenario on SQLite and PostgreSQL, prints a table per scenario
and writes ``bench/RESULTS.md``. Each measurement runs in processes of its own: the emulator
in one (``bench.emuproc``), the sync or the raw baseline in another (``bench.child``), so
neither shares a GIL or a resident set with the code being measured. The baseline is always
measured in the same run, on the same machine, because shared machines drift.

Modules: ``harness`` (processes, scratch databases, machine facts), ``emuproc`` (the emulator
process), ``child`` (one measured sync or baseline), ``baseline`` (the raw baseline),
``scenarios`` (the six scenarios), ``report`` (tables and RESULTS.md), ``run`` (the CLI).
"""
