"""The partners of a run: which to sync, what each one's lists say, what each one's listings
ask about, what the run may conclude about each one's devices, and how each one went.

A run syncs every configured partner (``[[partners]]``), or those ``sync --partner`` names.
Each partner's ``customers.list`` and vendors (``vendors.list``, then each vendor's
``vendors.customers.list``) are staged first: they say which owners its findByOwner listings
ask about, planned as a run of that partner alone would plan them. A partner whose
customers.list fails is left as it was, while the others go on; one whose vendors cannot be
listed keeps its vendors as they were. The run's scope (``sync_staging_scope``) tells the merge,
for each configured partner and section type, what a device missing from the listings means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from inventory.api import Page, ZeroTouchClient
from inventory.config import PartnerSettings, Settings
from inventory.errors import ApiError, CancelledError, ConfigError, ListingError
from inventory.store import snapshot
from inventory.store.runs import ListingResult, PartnerResult, RunStatus
from inventory.sync import staging
from inventory.sync.collect import Collector, Task
from inventory.sync.plan import plan_listings
from inventory.transform import BadRecordError, to_vendor_row

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection


def select_partners(settings: Settings, ids: Sequence[int] | None) -> list[PartnerSettings]:
    """The configured partners to sync: those ``ids`` names, in the configuration's order
    (every one when ``ids`` is empty or None).

    Raises:
        ConfigError: an id is not a configured partner's.
    """
    if not ids:
        return list(settings.partners)
    configured = [p.id for p in settings.partners]
    unknown = [i for i in ids if i not in configured]
    if unknown:
        raise ConfigError(
            f"--partner {', '.join(map(str, unknown))}: not a configured partner; "
            f"expected one of {', '.join(map(str, configured))} ([partner] or [[partners]])"
        )
    return [p for p in settings.partners if p.id in ids]


@dataclass
class Owners:
    """What a partner's listings ask about."""

    companies: list[int]
    workspaces: list[str]
    vendor_customers: list[int]  # its vendors' customers that are no customers of its own


@dataclass
class PartnerRun:
    """One partner of a run: its settings, its client, what it listed and how it went."""

    settings: PartnerSettings
    index: int  # its place among the run's partners
    client: ZeroTouchClient
    subset: list[int]  # the customers to list; empty: every customer
    result: PartnerResult
    customers_whole: bool = False  # customers.list arrived whole
    vendors_whole: bool = False  # vendors.list and every vendor's customers arrived whole

    @property
    def id(self) -> int:
        """The partner id."""
        return self.settings.id

    @property
    def everyone(self) -> bool:
        """True when the run listed every customer of the partner (and its vendors'): an
        owner no listing asked about has left it."""
        return self.customers_whole and self.vendors_whole and not self.subset


@dataclass
class PartnerLists:
    """Stages the lists of a run's partners and says what their listings ask about.

    Args:
        collector: takes customers.list pages (and keeps the run's warnings).
        writer: the run's writer connection, with its staging tables.
        halt: the run's stop flag.
        workspaces: Workspace customer ids every partner lists beside its customers' own
            (``sync.google_workspace_customer_ids``).
        concurrency: threads that fetch the vendors' customers (``api.concurrency``).
    """

    collector: Collector
    writer: Connection
    halt: Callable[[], bool]
    workspaces: Sequence[str]
    concurrency: int = 1  # threads that fetch the vendors' customers

    def stage(self, partner: PartnerRun, partners: Sequence[PartnerRun]) -> Owners:
        """Stage a partner's ``customers.list`` and vendors; return the owners to list: the
        companies, the Workspace accounts (the listed customers' own, then the configured
        ones), and the vendors' customers that are no customers of the partner's own.

        A partner whose customers.list fails is left as it was (nothing of it is listed) while
        the run's other ``partners`` go on.

        Raises:
            ApiError, ListingError: customers.list failed and so did every other partner's
                (the run's only partner, too): the run fails.
        """
        collector = self.collector
        try:
            for page in partner.client.iter_customer_pages():
                collector.customer_page(partner.id, page)
                if self.halt():
                    raise CancelledError("cancelled")
            workspaces = collector.customers_done(partner.id)
        except (ApiError, ListingError) as exc:
            collector.customers_failed(partner.id)
            partner.result.status, partner.result.error = RunStatus.FAILED, str(exc)
            last = partner is partners[-1]
            if last and all(p.result.status == RunStatus.FAILED for p in partners):
                raise
            collector.warn(
                f"partner {partner.id}: customers.list failed, so its customers and devices "
                f"are left as they were: {exc}"
            )
            return Owners([], [], [])
        partner.customers_whole = True
        partner.result.customers_seen = len(workspaces)
        vendor_customers = self._vendors(partner)
        companies = list(workspaces)
        if partner.subset:
            for missing in (c for c in partner.subset if c not in workspaces):
                collector.warn(
                    f"partner {partner.id}: customer {missing} is not in customers.list; "
                    "listed anyway"
                )
            companies = list(partner.subset)
            vendor_customers = []
        # Chrome OS devices may be claimed for a customer's Workspace account alone, or for one
        # that is no zero-touch customer of the reseller (sync.google_workspace_customer_ids).
        spaces = [w for c in companies if (w := workspaces.get(c))]
        spaces += self.workspaces
        vendors_only = [c for c in dict.fromkeys(vendor_customers) if c not in workspaces]
        return Owners(companies, list(dict.fromkeys(spaces)), vendors_only)

    def _vendors(self, partner: PartnerRun) -> list[int]:
        """Stage a partner's vendors and their customers; return those customers' ids.

        A vendor list that fails leaves the partner's vendors as they were (a warning; the run
        is partial for the partner).
        """
        client, found = partner.client, list[int]()
        try:
            vendors = self._stage(
                partner, "vendors.list", client.iter_vendor_pages(), staging.STAGED_VENDORS, None
            )
            # the vendors' customers at once, on ``concurrency`` threads (each a call or two,
            # kept), then staged here, on the run's thread
            with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
                fetched = [pool.submit(_all_pages, client, v) for v in vendors]
                for vendor_id, pages in zip(vendors, fetched, strict=True):
                    found += self._stage(
                        partner,
                        f"vendors.customers.list of vendor {vendor_id}",
                        iter(pages.result()),
                        staging.STAGED_VENDOR_CUSTOMERS,
                        vendor_id,
                    )
        except (ApiError, ListingError, BadRecordError) as exc:
            self.collector.warn(
                f"partner {partner.id}: its vendors could not be listed, so they are left as "
                f"they were: {exc}"
            )
            return found
        partner.vendors_whole = True
        return found

    def _stage(
        self,
        partner: PartnerRun,
        method: str,
        pages: Iterator[Page],
        table: Table,
        vendor_id: int | None,
    ) -> list[int]:
        """Stage every page of a vendors list; return the ids it listed.

        Raises:
            ListingError: the count does not match ``totalSize``.
            BadRecordError: a record cannot be stored.
        """
        ids, total = list[int](), None
        for page in pages:
            rows = []
            for item in page.items:
                row, unknown = to_vendor_row(item, partner.id, vendor_id)
                self.collector.unknown.update(unknown)
                rows.append(row)
            staging.stage_rows(self.writer, table, rows)
            ids += [r["vendor_id" if vendor_id is None else "company_id"] for r in rows]
            total = page.total_size
            if self.halt():
                raise CancelledError("cancelled")
        if total is not None and total != len(ids):
            raise ListingError(f"{method} returned {len(ids)} but totalSize said {total}")
        return ids

    def listing_tasks(
        self,
        partner: PartnerRun,
        owners: Owners,
        *,
        concurrency: int,
        max_ids: int,
        alone: bool,
    ) -> list[Task]:
        """A partner's findByOwner listings as fetch tasks: planned as a run of that partner
        alone would plan them (from its devices in the snapshot: all of them when it is the
        run's only partner, ``alone``), then its vendors' customers' (few: a listing per
        section type and ``max_ids``)."""
        if not partner.customers_whole:
            return []
        sections, collector = partner.settings.section_types, self.collector
        with self.writer.begin():  # what the snapshot holds plans the listings
            by_company, by_workspace = snapshot.devices_per_owner(
                self.writer, sections, None if alone else partner.id
            )
        planned = plan_listings(
            owners.companies,
            owners.workspaces,
            sections,
            concurrency=concurrency,
            max_ids=max_ids,
            by_company=by_company,
            by_workspace=by_workspace,
        )
        tasks = [
            collector.listing_task(
                partner.id,
                p.section_type,
                p.company_ids,
                p.google_workspace_customer_ids,
                p.expected_devices,
            )
            for p in planned
        ]
        size, vendors = max(1, max_ids), owners.vendor_customers
        tasks += [
            collector.listing_task(
                partner.id, section, chunk, [], sum(by_company.get(c, 0) for c in chunk)
            )
            for section in sections
            for chunk in (vendors[i : i + size] for i in range(0, len(vendors), size))
        ]
        return tasks


def _all_pages(client: ZeroTouchClient, vendor_id: int) -> list[Page]:
    """Every page of one vendor's ``vendors.customers.list``."""
    return list(client.iter_vendor_customer_pages(vendor_id))


def scope_rows(
    configured: Sequence[PartnerSettings], partners: Sequence[PartnerRun]
) -> list[tuple[int, str, str]]:
    """(partner, section type, mode) of every configured partner: see ``StagingScope``."""
    synced = {p.id: p for p in partners}
    rows = []
    for settings in configured:
        partner = synced.get(settings.id)
        if partner is None or not partner.customers_whole:
            mode = "skipped"
        else:
            mode = "everyone" if partner.everyone else "explicit"
        rows += [(settings.id, section, mode) for section in settings.section_types]
    return rows


def settle_outcomes(
    partners: Sequence[PartnerRun],
    listings: Sequence[ListingResult],
    seen_per_listing: Mapping[int, int],
) -> None:
    """How each partner went: failed (set when its customers.list failed), partial (an
    incomplete listing, or its vendors), or succeeded; and the devices it saw (those the
    merge kept of its listings' rows)."""
    seen: dict[int, int] = {}
    whose = {x.listing_id: x.partner_id for x in listings}
    for listing_id, devices in seen_per_listing.items():
        if listing_id in whose:  # not the few a removal check found
            seen[whose[listing_id]] = seen.get(whose[listing_id], 0) + devices
    for partner in partners:
        outcome = partner.result
        outcome.devices_seen = seen.get(partner.id, 0)
        if outcome.status == RunStatus.FAILED:
            continue
        mine = [x for x in listings if x.partner_id == partner.id]
        whole = partner.vendors_whole and all(x.complete for x in mine)
        outcome.status = RunStatus.SUCCEEDED if whole else RunStatus.PARTIAL
