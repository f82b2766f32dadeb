"""The public monitor: per hoster and per platform, per month, quarter and year, how much was
reported and notified and how fast it came down, kept up to date as events arrive
(``docs/monitor.md``)."""
