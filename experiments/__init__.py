"""Experiments that reproduce papers' tables on simulated data (``python -m experiments.<name>``)."""
