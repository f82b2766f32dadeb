"""A ``SignalExchangeAPI`` for Meta's ``threatexchange`` tools: they read a meldpunt set's feed
like any other exchange (``docs/exchange.md``)::

    pip install threatexchange            # the tools themselves; meldpunt does not need them
    threatexchange config extensions add meldpunt.exchange.txplugin
    threatexchange config collab edit meldpunt police-nl --create \\
        --url https://meldpunt.example.nl --set-name police --public-key KEY
    TX_MELDPUNT_TOKEN=mpx_... threatexchange fetch
    threatexchange dataset -P             # the PDQ hashes, each with its category as a tag

Every page is verified exactly as ``meldpunt exchange pull`` verifies it (``feeds.parse_page``):
a page that does not fit stops the fetch with the reason. Removals reach the tools as deletions.
Only PDQ travels: ``threatexchange`` has no signal type for a picture's MD5.

No ``from __future__ import annotations`` here: the tools read the configuration's field types
at run time to build their command-line options.
"""

import typing as t
from dataclasses import dataclass, field
from urllib.parse import quote

from threatexchange.exchanges import auth, signal_exchange_api
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.signal_base import SignalType

from meldpunt.exchange.errors import FeedUnavailable
from meldpunt.exchange.feeds import DEFAULT_PAGE, parse_page
from meldpunt.exchange.follow import partner_policy
from meldpunt.registry.categories import CODES, NEVER_MATCHED
from meldpunt.reports.fetcher import FetchError, FetchPolicy, fetch

__all__ = [
    "TX_MANIFEST",
    "MeldpuntCheckpoint",
    "MeldpuntCollabConfig",
    "MeldpuntCredentials",
    "MeldpuntSignalExchangeAPI",
    "MeldpuntSignalMetadata",
]

#: meldpunt's signal types and the ``threatexchange`` types they are.
SIGNAL_TYPES = {"pdq": PdqSignal.get_name()}


@dataclass
class MeldpuntCollabConfig(CollaborationConfigWithDefaults):
    url: str = field(default="", metadata={"help": "the instance's base URL"})
    set_name: str = field(default="", metadata={"help": "the set to follow"})
    public_key: str = field(
        default="", metadata={"help": "the instance's key (meldpunt exchange key)"}
    )
    page_size: int = field(default=DEFAULT_PAGE, metadata={"help": "changes per page"})


@dataclass
class MeldpuntCheckpoint(state.FetchCheckpointBase):
    after: int  # the last change number applied

    def get_progress_timestamp(self) -> int | None:
        return None


@dataclass
class MeldpuntSignalMetadata(state.FetchedSignalMetadata):
    category: str
    entry: int

    def get_as_opinions(self) -> t.Sequence[state.SignalOpinion]:
        if self.category in NEVER_MATCHED:
            kind = state.SignalOpinionCategory.NEGATIVE_CLASS
        elif self.category in CODES and CODES[self.category].illegal:
            kind = state.SignalOpinionCategory.POSITIVE_CLASS
        else:
            kind = state.SignalOpinionCategory.INVESTIGATION_SEED
        return [state.SignalOpinion(False, kind, {self.category})]


@dataclass
class MeldpuntCredentials(auth.CredentialHelper):
    ENV_VARIABLE: t.ClassVar[str] = "TX_MELDPUNT_TOKEN"
    FILE_NAME: t.ClassVar[str] = "~/.tx_meldpunt_token"

    token: str

    @classmethod
    def _from_str(cls, s: str) -> "MeldpuntCredentials":
        return cls(s.strip())

    def _are_valid(self) -> bool:
        return self.token.startswith("mpx_")


class MeldpuntSignalExchangeAPI(
    auth.SignalExchangeWithAuth[MeldpuntCollabConfig, MeldpuntCredentials],
    signal_exchange_api.SignalExchangeAPIWithSimpleUpdates[
        MeldpuntCollabConfig, MeldpuntCheckpoint, MeldpuntSignalMetadata
    ],
):
    """A meldpunt instance's set, read through its signed feed."""

    def __init__(
        self, collab: MeldpuntCollabConfig, token: str, policy: FetchPolicy | None = None
    ) -> None:
        self.collab = collab
        self.token = token
        self.policy = partner_policy(policy or FetchPolicy())

    @classmethod
    def get_name(cls) -> str:
        return "meldpunt"

    @staticmethod
    def get_config_cls() -> type[MeldpuntCollabConfig]:
        return MeldpuntCollabConfig

    @staticmethod
    def get_checkpoint_cls() -> type[MeldpuntCheckpoint]:
        return MeldpuntCheckpoint

    @staticmethod
    def get_record_cls() -> type[MeldpuntSignalMetadata]:
        return MeldpuntSignalMetadata

    @staticmethod
    def get_credential_cls() -> type[MeldpuntCredentials]:
        return MeldpuntCredentials

    @classmethod
    def for_collab(
        cls,
        collab: MeldpuntCollabConfig,
        credentials: MeldpuntCredentials | None = None,
    ) -> "MeldpuntSignalExchangeAPI":
        credentials = credentials or MeldpuntCredentials.get(cls)
        return cls(collab, credentials.token)

    def _page(self, after: int) -> bytes:
        url = (
            f"{self.collab.url.rstrip('/')}/v1/feeds/{quote(self.collab.set_name, safe='')}"
            f"?after={after}&limit={self.collab.page_size}"
        )
        try:
            answer = fetch(url, self.policy, headers={"Authorization": f"Bearer {self.token}"})
        except FetchError as exc:
            raise FeedUnavailable(f"{self.collab.name}: {exc}") from None
        if answer.status != 200 or answer.truncated:
            detail = answer.body[:300].decode("utf-8", "replace")
            raise FeedUnavailable(f"{self.collab.name} answered {answer.status}: {detail}")
        return answer.body

    def fetch_iter(
        self,
        _supported_signal_types: t.Sequence[type[SignalType]],
        checkpoint: MeldpuntCheckpoint | None,
    ) -> t.Iterator[state.FetchDelta[tuple[str, str], MeldpuntSignalMetadata, MeldpuntCheckpoint]]:
        after = checkpoint.after if checkpoint is not None else 0
        while True:
            page = parse_page(
                self._page(after),
                partner=self.collab.name,
                public_key=self.collab.public_key,
                set_name=self.collab.set_name,
                after=after,
            )
            updates: dict[tuple[str, str], MeldpuntSignalMetadata | None] = {}
            c = page.columns
            for action, signal_type, value, category, entry in zip(
                c.action, c.type, c.value, c.category, c.entry, strict=True
            ):
                kind = SIGNAL_TYPES.get(signal_type)
                if kind is None:
                    continue
                record = None if action == "remove" else MeldpuntSignalMetadata(category, entry)
                updates[(kind, value)] = record
            after = page.last
            yield state.FetchDelta(updates, MeldpuntCheckpoint(after))
            if not page.more:
                return


TX_MANIFEST = ThreatExchangeExtensionManifest(apis=(MeldpuntSignalExchangeAPI,))
