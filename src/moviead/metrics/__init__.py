"""Metrics: retrieval (Stage-I), captioning, R@k/N within neighbours, redundancy (as they land)."""
