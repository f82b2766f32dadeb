"""Notice-and-takedown: hoster attribution, the abuse-contact directory, notices, re-checks,
re-notices and escalation of the hotline's items."""
