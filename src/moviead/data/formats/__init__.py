"""Readers for every on-disk annotation format (MAD, AutoAD, LSMDC, Storyboard-v2, TV-AD, CMD-AD)."""
