"""`python -m bench.tune`: the fastest index configuration that reaches a recall target, found with Optuna.

- spaces: the search spaces (conf/tune/<TYPE>.yaml), sized by the corpus;
- trial: one build, the bisection of the search parameter, the timing at the chosen value;
- objectives: what a trial optimises and its noise range; memory: index memory estimates;
- study: the Optuna studies (tuner, grid baseline, defaults) in SQLite, resumable;
- corpus: the embeddings and the filled collection, from the caches;
- report, plots: the tables, the recommendation, the history and Pareto figures; run: one tuning run.
"""
