"""Tests of tastebud.data."""
