"""The reference paper's own numbers (Lu, Tavabi & Soleymani, BMVC 2020: Tables 1-5 and
supplementary Tables 1-5) as leaderboard-format CSVs, installed as ``ssfbench.paper_tables``.
This folder holds data only; ``README.md`` beside this file describes it and
``ssfbench.report.compare.paper_table`` reads it."""
