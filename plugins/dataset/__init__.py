"""Offline evaluation on LeRobotDatasets (placeholder until the plugin lands)."""
