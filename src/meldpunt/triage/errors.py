"""Errors of triage: each names what a person can fix (a case name, a source, a group)."""

from __future__ import annotations

from meldpunt.errors import Conflict, InvalidInput, MeldpuntError, NotFound


class TriageError(MeldpuntError):
    """Base class of the errors triage raises to its callers."""

    code = "triage_error"


class CaseNotFound(TriageError, NotFound):
    code = "case_not_found"


class BadInput(TriageError, InvalidInput):
    code = "invalid_input"


class CaseConflict(TriageError, Conflict):
    code = "case_conflict"


class ClusterUnavailable(TriageError):
    """``--ray ADDRESS`` was given but no Ray cluster answers there (or Ray is not installed)."""

    code = "cluster_unavailable"
    status = 503
