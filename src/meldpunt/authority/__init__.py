"""The authority's workflow: cases opened from the hotline's escalations, binding removal orders
with deadlines, penalty payments while an order stays unmet, fines, the duty-of-care record per
hoster and the publication of decisions (``docs/authority.md``)."""
