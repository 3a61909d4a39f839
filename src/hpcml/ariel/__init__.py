"""Ariel ML Data Challenge 2021: exoplanet transmission spectra from light curves."""
