"""Reporters: the terminal summary (and later JSON, HTML, JUnit)."""
