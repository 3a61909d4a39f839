"""Pieces every pipeline shares: atomic I/O, shards, seeding, config, training."""
