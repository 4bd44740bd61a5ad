"""Time-triggered builds: the cron timetable."""
