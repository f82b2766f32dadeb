"""The hash check service's domain: organisations, API keys and roles, subscriptions, hits and
their follow-up, figures per organisation, and the false-positive review queue.

    from meldpunt import checks
    org = checks.create_org(session, "example-platform", "platform")
    key_info, key = checks.create_key(session, org.id, "platform")   # key: shown once
    principal = checks.authenticate(session, key)                    # Principal or None
    sub = checks.get_subscription(session, principal.org_id)
    checks.record_check(session, principal.org_id, items=len(batch))
    ids = checks.record_hits(session, principal.org_id, [checks.NewHit.from_match(m, value)])
    checks.record_outcome(session, principal.org_id, ids[0], "removed", actor="org:1")

Writers flush into the caller's transaction and audit there; the caller commits. This room knows
nothing of HTTP, pages or the command line.
"""

from meldpunt.checks.errors import ChecksError, InvalidInput, NotFound
from meldpunt.checks.hits import (
    OUTCOMES,
    RECHECK_STATUSES,
    HitInfo,
    NewHit,
    check_public_url,
    get_hit,
    list_hits,
    overdue_hits,
    record_check,
    record_hits,
    record_outcome,
)
from meldpunt.checks.keys import (
    KEY_LENGTH,
    KEY_PREFIX,
    PREFIX_LENGTH,
    ROLES,
    KeyInfo,
    Principal,
    authenticate,
    create_key,
    hash_key,
    list_keys,
    looks_like_key,
    revoke_key,
)
from meldpunt.checks.orgs import (
    ORG_KINDS,
    OrgInfo,
    OrgRef,
    create_org,
    disable_org,
    enable_org,
    get_org,
    list_orgs,
    set_show_distances,
)
from meldpunt.checks.reviews import REVIEW_RESOLUTIONS, ReviewInfo, resolve_review, review_queue
from meldpunt.checks.stats import OrgStats, org_stats
from meldpunt.checks.subscriptions import Subscription, get_subscription, set_subscription
from meldpunt.checks.timing import outcome_due, recheck_after
from meldpunt.checks.vocabulary import OrgKind, Outcome, RecheckStatus, ReviewResolution, Role

__all__ = [
    "OrgKind",
    "Outcome",
    "RecheckStatus",
    "ReviewResolution",
    "Role",
    "KEY_LENGTH",
    "KEY_PREFIX",
    "ORG_KINDS",
    "OUTCOMES",
    "PREFIX_LENGTH",
    "RECHECK_STATUSES",
    "REVIEW_RESOLUTIONS",
    "ROLES",
    "ChecksError",
    "HitInfo",
    "InvalidInput",
    "KeyInfo",
    "NewHit",
    "NotFound",
    "OrgInfo",
    "OrgRef",
    "OrgStats",
    "Principal",
    "ReviewInfo",
    "Subscription",
    "authenticate",
    "check_public_url",
    "create_key",
    "create_org",
    "disable_org",
    "enable_org",
    "get_hit",
    "get_org",
    "get_subscription",
    "hash_key",
    "list_hits",
    "list_keys",
    "list_orgs",
    "looks_like_key",
    "org_stats",
    "outcome_due",
    "overdue_hits",
    "record_check",
    "record_hits",
    "record_outcome",
    "recheck_after",
    "resolve_review",
    "review_queue",
    "revoke_key",
    "set_show_distances",
    "set_subscription",
]
