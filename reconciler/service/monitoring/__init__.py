"""The cron-monitoring service's side of a run: pings of its start and its end."""
