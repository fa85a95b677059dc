"""Widgets shared by the UI's screens."""
