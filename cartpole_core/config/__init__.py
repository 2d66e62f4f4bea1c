"""Validated config models and their field metadata, schedules, presets and the input limits — import-light."""
