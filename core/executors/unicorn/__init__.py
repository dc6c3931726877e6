"""The Unicorn tier: any genome, any host, both ISAs.

* :mod:`~core.executors.unicorn.harness`: the guest code that loops over genomes and cases, and
  the fast-lane slots around genome code;
* :mod:`~core.executors.unicorn.triage`: static lane choice (fast lane or slow lane) per genome;
* :mod:`~core.executors.unicorn.engine`: :class:`UnicornEngine`, the Unicorn machine that runs
  both lanes.

The order in which the tiers and lanes are tried is :mod:`core.executors.tiered`'s.
"""
