"""Alerts: pure decisions (no I/O) about who is told what, and when, about a cron's runs."""
