from typing import Any

def build(
    hashes: Any,
    widths: tuple[int, ...],
    base: Any,
    rel: Any,
    rel_bytes: int,
    ids: Any,
    id_bytes: int,
    /,
) -> bool: ...
def search(*args: Any) -> int: ...
def search_batch(*args: Any) -> int: ...
def scan(
    hashes: Any,
    alive: Any,
    queries: Any,
    radius: int,
    slot_base: int,
    out_query: Any,
    out_slot: Any,
    out_distance: Any,
    /,
) -> int: ...
def check(
    hashes: Any,
    alive: Any,
    widths: tuple[int, ...],
    base: Any,
    rel: Any,
    rel_bytes: int,
    ids: Any,
    id_bytes: int,
    /,
) -> str | None: ...
def workspace() -> Any: ...
