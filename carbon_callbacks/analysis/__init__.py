"""Framework-free analysis of finished runs: readers, statistics, stopping rules, replay and suggestions."""
