"""Hyper-parameter sweeps over any training rule: grid and random as Snakemake jobs, bayes as Optuna workers."""
