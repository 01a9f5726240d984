"""Committed leaderboard CSVs (``results/<dataset>.csv``), installed as ``ssfbench.leaderboards``
so that ``ssfbench compare`` shows them after a plain ``pip install``. This folder holds data only;
the schema is in ``README.md`` beside this file."""
