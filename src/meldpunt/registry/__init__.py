"""The registry of known material: hash sets, their items and signals, categories, the numbered
change log, and import and export in the field's exchange formats.

What an index that follows the registry uses::

    from meldpunt import registry
    seq = registry.current_seq(session)
    for signal in registry.active_signals(session, "pdq"): ...   # ActiveSignal
    for change in registry.changes_since(session, seq): ...      # Change, in seq order
    registry.get_set(session, change.set_id)          # HashSetInfo: kind, state, threshold

Every write takes the registry lock (``locking``), appends its change rows and its audit event
in the caller's transaction; the caller commits. Imports commit per batch themselves.
"""

from meldpunt.registry.batch import ItemInput, ItemOutcome, apply_items, normalize_signals
from meldpunt.registry.categories import (
    CODES,
    FILTERS,
    NEVER_MATCHED,
    SUBSCRIBED_BY_DEFAULT,
    Category,
    CategoryCode,
    category_filter,
    classify,
)
from meldpunt.registry.changes import (
    ActiveSignal,
    Change,
    active_signals,
    changes_since,
    current_seq,
)
from meldpunt.registry.errors import (
    ConflictingItems,
    FormatError,
    InvalidInput,
    NotFound,
    RegistryError,
)
from meldpunt.registry.exporting import EXPORT_FORMATS, export_set, iter_items
from meldpunt.registry.importing import (
    ImportProgress,
    ImportSummary,
    Problem,
    import_file,
    import_stream,
)
from meldpunt.registry.items import (
    ItemInfo,
    ItemResult,
    add_item,
    delete_item,
    disable_item,
    enable_item,
    find_items,
    get_item,
    withdraw_item,
)
from meldpunt.registry.locking import lock_registry
from meldpunt.registry.sets import (
    HashSetInfo,
    create_set,
    disable_set,
    enable_set,
    get_set,
    list_sets,
    set_ways,
    update_set,
)
from meldpunt.registry.signal_types import PhotoDNA, register_registry_signal_types
from meldpunt.registry.summaries import SetSummary, set_summaries, set_summary
from meldpunt.registry.vocabulary import ItemStatus, MatchWay, SetKind, SetState

register_registry_signal_types()

__all__ = [
    "ItemStatus",
    "MatchWay",
    "SetKind",
    "SetState",
    "CODES",
    "EXPORT_FORMATS",
    "FILTERS",
    "NEVER_MATCHED",
    "SUBSCRIBED_BY_DEFAULT",
    "ActiveSignal",
    "Category",
    "CategoryCode",
    "Change",
    "ConflictingItems",
    "FormatError",
    "HashSetInfo",
    "ImportProgress",
    "ImportSummary",
    "InvalidInput",
    "ItemInfo",
    "ItemInput",
    "ItemOutcome",
    "ItemResult",
    "NotFound",
    "PhotoDNA",
    "Problem",
    "RegistryError",
    "SetSummary",
    "active_signals",
    "add_item",
    "apply_items",
    "category_filter",
    "changes_since",
    "classify",
    "create_set",
    "current_seq",
    "delete_item",
    "disable_item",
    "disable_set",
    "enable_item",
    "enable_set",
    "export_set",
    "find_items",
    "get_item",
    "get_set",
    "import_file",
    "import_stream",
    "iter_items",
    "list_sets",
    "lock_registry",
    "normalize_signals",
    "set_summaries",
    "set_summary",
    "set_ways",
    "update_set",
    "withdraw_item",
]
