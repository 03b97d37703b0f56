"""Execution records, the ECS events that move them and the watchdog's repairs."""
