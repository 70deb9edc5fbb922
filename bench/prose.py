"""The words of the report: what each scenario measured, and why a target was missed.

Scenarios pass their figures in; nothing here measures. The notes of ``RESULTS.md`` as a whole
are :data:`NOTES`.
"""

from __future__ import annotations

from typing import Any

NOTES = [
    "Each measured sync or baseline runs in a fresh process of its own (`bench.child`), and "
    "the emulator in another (the real `zt-inventory emulator` command on a loopback port), so "
    "the measured process shares neither a GIL nor a resident set with the server. Request "
    "counts, 429 answers, arrival times and bytes sent are the emulator's own "
    "(`GET /_emulator/stats`). The machine has 2 cores, shared with other work: walls vary "
    "between runs by tens of percent, which is why scenario 1 interleaves its runs and "
    "compares the best of each.",
    "The raw baseline (`bench/baseline.py`) asks for the same pages through the product's own "
    "client (`inventory.api.connect`: the same wire format and headers, orjson parsing, "
    "retries), plans the same listings (`inventory.sync.plan.plan_listings`) and schedules "
    "their pages the same way (`inventory.sync.fetch.fetch_pages`: request slots on threads, "
    "the chain with the most pages left first) with the same concurrency. It writes each "
    "device once, as the API sent its values, into plain copies of `devices`, `device_claims` "
    "and `device_metadata` (column names and types from `inventory.models`; no keys, no "
    "indexes) in one transaction: `executemany` on SQLite (WAL, `synchronous=NORMAL`, as the "
    "product opens it), `COPY` on PostgreSQL. It does no validation or conversion, change "
    "detection, staging, history, removal bookkeeping or run record.",
]

QUOTA = (
    "Quota used = calls that arrived in the first k whole windows after the first call "
    "divided by k x quota, with k = whole windows between the first and the last call: a "
    "client that refills every window as soon as it opens scores 100 %. Arrival times and "
    "429 answers are the emulator's own counts."
)

UNCHANGED = (
    "Rows written are counted in devices, device_claims, device_metadata, device_versions and "
    "customers: on PostgreSQL by comparing every row's xmin before and after, on SQLite with "
    "triggers that count inserts, updates and deletes. The merge phase runs from the "
    "'merging' progress phase to the end of the run (removal staging, counts, the merge "
    "transaction and staging cleanup)."
)

WIRE = (
    "Bytes are what the emulator sent (bodies after gzip, headers left out), counted by the "
    "emulator itself, over the customers and every device a default sync lists; share = "
    "bytes per device against indented JSON. The first row is a real sync, asking as its "
    "client asks today; the others ask the same emulator directly in each format Google "
    "offers. Google pretty-prints unless a request says `prettyPrint=false`, and gzips only "
    "when the request accepts gzip and its User-Agent contains `gzip`."
)


def throughput_setup(devices: int, customers: int, sync: dict[str, Any], repeat: int) -> str:
    """What scenario 1 ran."""
    return (
        f"{devices:,} devices over {customers:,} customers (Zipf skew 1.1); "
        f"{sync['devices_seen']:,} are zero-touch claimed and listed. The baseline and the "
        "sync use the same client, concurrency, listings and page scheduling; best of "
        f"{repeat} interleaved runs each. The last row only fetches and parses, through the "
        "same client: the ceiling the emulator and the client set for both."
    )


def throughput_why(
    kind: str, best: dict[str, dict[str, Any]], fetch: dict[str, Any], target: float
) -> str:
    """Why the sync fell short of ``target`` x the baseline's devices/s."""
    sync, base = best["sync"], best["baseline"]
    phases = sync.get("phases") or {}
    stage, merge = phases.get("devices"), phases.get("merging")
    budget = base["wall_s"] / target - base["wall_s"]
    parts = [
        f"{kind}: the sync spent {sync['cpu_s']:.1f} CPU s in its own process against the "
        f"baseline's {base['cpu_s']:.1f}"
    ]
    if stage is not None:
        parts.append(
            f"; its fetch+stage phase took {stage:.1f} s against {fetch['wall_s']:.1f} s for "
            "fetching and parsing alone"
        )
    if merge is not None:
        parts.append(f", and its merge {merge:.1f} s more")
    parts.append(
        ". That is work the baseline does not do: each device is validated, converted and "
        "hashed on one interpreter, written to staging, then copied into the public tables "
        "and a history row."
    )
    if kind != "sqlite":
        parts.append(" PostgreSQL does its share in its own processes, on the same 2 cores.")
    parts.append(
        f" The target leaves {budget:.1f} s for everything the sync adds to the baseline's "
        f"{base['wall_s']:.1f} s."
    )
    return "".join(parts)


def request_count_setup(
    customers: int, each: int, calls: int, floor_100: int, emulator_requests: int
) -> str:
    """What scenario 2 ran, and how its floor is counted."""
    return (
        f"{customers:,} customers with {each} devices each on average (even shares, no "
        "unclaimed devices). Floor = ceil(devices/100) + ceil(customers/customers page): "
        "customers.list sets no maximum page size, and the sync asks for 1000 a page. Counted "
        f"with customer pages of 100 instead, the floor would be {floor_100} and calls/floor "
        f"{calls / floor_100:.3f}. The calls are the sync's own count; the emulator answered "
        f"{emulator_requests} requests. Partial pages = findByOwner calls beyond "
        "ceil(devices/100): each listing's last page is partly filled. Why the target is "
        "missed: a findByOwner request names at most api.max_ids_per_request = 100 owners "
        "(Google's reseller library caps it there; a server that refuses more would fail the "
        "run), and never companies and Workspace accounts together (the discovery document "
        "leaves open whether such a request returns the union or the intersection). So "
        f"{customers:,} customers take at least {customers // 100:,} company listings, and "
        "their Workspace accounts some more, each a chain ending in a partly filled page "
        "(half a call on average), and a Chrome OS device claimed for a company and its "
        "Workspace account comes back in both kinds of listing. Before the cap (20 listings) "
        "the same fleet took 1.010 x."
    )


def latency_setup(devices: int, customers: int) -> str:
    """What scenario 3 ran and how it is judged."""
    return (
        f"{devices:,} devices spread evenly over {customers:,} customers; every call takes "
        "100 ms at the emulator (its own work included), api.concurrency = 8. The target is "
        "judged on the whole run, what the user waits for; the customers, devices and merge "
        "phases are shown beside it, and the customers+devices column is the share that API "
        "latency can hide."
    )


def latency_why(
    kind: str,
    result: dict[str, Any],
    by_method: dict[str, int],
    fetch: dict[str, Any],
    api_s: float,
) -> str:
    """Where a latency run spent the time beyond the ideal."""
    ideal = result["api_requests"] * 0.1 / 8
    customer_calls = int(by_method.get("customers.list", 0))
    merge = (result.get("phases") or {}).get("merging") or 0.0
    fetch_ideal = fetch["api_requests"] * 0.1 / 8
    return (
        f"{kind}: the whole run took {result['wall_s']:.2f} s against an ideal of {ideal:.2f} "
        f"s. The customers and devices phases took {api_s:.2f} s ({api_s / ideal:.2f} x); "
        f"customers.list alone is {customer_calls} sequential call(s), each page's token "
        f"coming from the one before. The merge took {merge:.2f} s, which no API latency can "
        f"hide. A client that only fetches and parses the same pages took "
        f"{fetch['wall_s'] / fetch_ideal:.2f} x its ideal."
    )


def latency_skew(devices: int, customers: int, longest: int, ideal: float) -> str:
    """The skewed fleet's rows: reported, not judged, and the least any client can take."""
    pages = -(-longest // 100)
    chain_s = pages * 0.1
    return (
        f"Skewed fleet rows (reported, not judged): {devices:,} devices over {customers:,} "
        f"customers with Zipf skew 1.1, the same 100 ms calls. Its largest customer has "
        f"{longest:,} devices, a chain of {pages} pages that one request at a time must "
        f"follow: {chain_s:.1f} s, {chain_s / ideal:.2f} x the ideal, the least any client can "
        "take. A first sync knows nothing of the fleet; a re-sync plans its listings from the "
        "devices each customer has in the snapshot (longest chains first, request slots "
        "balanced)."
    )


def memory_setup(customers: int) -> str:
    """What scenario 5 ran."""
    return (
        f"First syncs into empty databases, {customers:,} customers each; peak RSS is VmHWM "
        "of the sync's own process (the emulator runs in another)."
    )


def matrix_setup(
    devices: int, customers: int, chrome: float, large: list[int], stop: tuple[int, int]
) -> str:
    """What scenario 7 ran, and how its columns are counted."""
    sizes = f" and again at {large[0]:,} devices for the memory targets" if large else ""
    factor, floor_s = stop
    return (
        f"Each configuration: {devices:,} emulated devices over {customers:,} customers"
        f"{sizes}, a first sync into an empty database, then an unchanged re-sync of the same "
        "fleet. Fleets spread devices evenly over customers except the skewed one. Both "
        "section types: sync.section_types = [SIM_LOCK, ZERO_TOUCH]. The Chrome OS "
        f"configurations make {chrome:.0%} of the devices Chrome OS devices, each claimed for "
        "its customer's Workspace account, without (alone) or with the company. Devices listed "
        "= distinct devices the run saw; bytes received = what the emulator sent during the "
        "run (its own count) per device listed; database bytes = the SQLite file and its WAL, "
        "or pg_database_size, after the run, per device listed. A first sync with both "
        "section types is judged on its whole run per device listed against ZERO_TOUCH "
        "only's. Memory is judged on the larger of each size's two runs. A re-sync that runs "
        f"longer than {factor} x its first sync (and at least {floor_s} s) is stopped there "
        "and reported as missed: a quadratic step would otherwise hold the run for hours."
    )
