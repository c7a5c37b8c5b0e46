"""Data made by code: synthetic images with exact labels and the domain-shift benchmark's images."""
