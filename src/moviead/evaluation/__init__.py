"""Evaluation pieces that need no model: the resumable predictions file, the decoding schedule, scoring, gaps."""
