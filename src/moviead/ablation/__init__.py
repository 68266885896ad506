"""`moviead ablate`: the papers' ablation rows, trained and evaluated per seed, summarised with whether each holds."""
