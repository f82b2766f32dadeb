"""The exchange between instances: partners, signed change feeds, following partners' sets.

- ``keys``: the instance's Ed25519 key (signs our pages) and partners' public keys;
- ``partners``: partners and their rules (which sets go out, which come in);
- ``feeds``: a set's changes as signed pages (``build_page``) and their checks (``parse_page``);
- ``follow``: pulling partners' pages and applying them with provenance;
- ``work``: the worker's step;
- ``txplugin``: a ``SignalExchangeAPI`` so that the ``threatexchange`` tools read our feeds.
"""

from meldpunt.exchange.errors import (
    ExchangeError,
    FeedUnavailable,
    Forbidden,
    InvalidInput,
    NotFound,
    PageRefused,
    Unauthenticated,
)
from meldpunt.exchange.feeds import FeedPage, build_page, parse_page
from meldpunt.exchange.follow import FollowResult, partner_policy, pull, pull_due
from meldpunt.exchange.keys import InstanceKey, fingerprint, instance_key, parse_public_key
from meldpunt.exchange.partners import (
    FollowInfo,
    PartnerInfo,
    add_partner,
    get_partner,
    issue_token,
    list_partners,
    parse_receive,
    set_partner_state,
    update_partner,
)

__all__ = [
    "ExchangeError",
    "FeedPage",
    "FeedUnavailable",
    "FollowInfo",
    "FollowResult",
    "Forbidden",
    "InstanceKey",
    "InvalidInput",
    "NotFound",
    "PageRefused",
    "PartnerInfo",
    "Unauthenticated",
    "add_partner",
    "build_page",
    "fingerprint",
    "get_partner",
    "instance_key",
    "issue_token",
    "list_partners",
    "parse_page",
    "parse_public_key",
    "parse_receive",
    "partner_for_token",
    "partner_policy",
    "pull",
    "pull_due",
    "set_partner_state",
    "update_partner",
]

from meldpunt.exchange.partners import partner_for_token  # noqa: E402
