"""Metrics: retrieval (Stage-I), captioning, R@k/N within neighbours, redundancy, repetition between consecutive
ADs (as they land)."""
