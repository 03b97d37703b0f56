"""Monitors at a cron-monitoring service (Cronitor, Healthchecks.io), derived from the CronSpec
(pure): the model (``model.py``), the schedule conversion (``schedule.py``) and the desired
monitor of a cron (``desired.py``)."""
