"""``zt-inventory check``: what the sync assumes about the API, asked of the configured account.

The discovery document leaves open things a sync depends on: whether one findByOwner request may
name several owners and how it counts them, how many ids one request may name, what a request
naming companies and Workspace accounts together answers, whether ``customers.list`` accepts a
page of 1,000, whether page tokens read the same listing twice alike. Each check asks with a few
calls through the client stack a sync uses, and says what it found. Read-only: nothing is
written, to the account or the database.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from inventory.api import Counters, Page, ZeroTouchClient, connect
from inventory.api.client import CUSTOMERS_FALLBACK_PAGE_SIZE, CUSTOMERS_PAGE_SIZE
from inventory.auth import SCOPE, load_configured_credentials
from inventory.config import PartnerSettings, Settings, require_for_sync
from inventory.errors import ApiError, AuthError, FatalApiError, ListingError

PROBES = 10  # customers (and Workspace accounts) probed, one call each, for a sample
SAMPLE = 3  # owners with devices packed into one request
MIX_MAX_DEVICES = 600  # the union check pages through its listings: a small pair only
PAGE_LIMIT = 100  # findByOwner's largest page
PACK_COMPANIES = "packing company ids"
PACK_WORKSPACES = "packing Workspace ids"


class Outcome(StrEnum):
    """What one check found."""

    OK = "ok"
    FAILED = "FAILED"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Finding:
    """One line of the report: which check, its outcome, and what it found."""

    name: str
    outcome: Outcome
    text: str

    def line(self) -> str:
        """The report line, e.g. ``ok      partner id: customers.list answered …``."""
        return f"{self.outcome.value:<8}{self.name}: {self.text}"


@dataclass
class _Owner:
    """A company or Workspace account and its devices' totalSize alone."""

    key: str  # the company id as a decimal string, or the Workspace customer id
    company: bool
    total: int


@dataclass
class _Account:
    """What the checks learnt of the account so far."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    companies: list[_Owner] = field(default_factory=list)  # probed, with devices
    workspaces: list[_Owner] = field(default_factory=list)  # probed, with devices
    workspace_of: dict[str, str] = field(default_factory=dict)  # company id -> Workspace id


@dataclass
class Report:
    """What ``check`` found: its findings in report order, and the API requests it took."""

    findings: list[Finding] = field(default_factory=list)
    requests: int = 0

    @property
    def failed(self) -> list[Finding]:
        """The findings that failed."""
        return [f for f in self.findings if f.outcome == Outcome.FAILED]


def run_checks(
    settings: Settings,
    *,
    on_partner: Callable[[PartnerSettings], None] | None = None,
    on_finding: Callable[[Finding], None] | None = None,
    **connect_kwargs: Any,
) -> Report:
    """Check every configured partner.

    Args:
        settings: validated settings.
        on_partner: called before a partner's checks (the CLI prints a heading).
        on_finding: called with each finding as soon as it is known (the CLI prints it).
        **connect_kwargs: passed to :func:`inventory.api.connect` (``transport``, ``sleep``).

    Raises:
        ConfigError: the settings cannot be used for a sync (no partner, an unusable key file).
    """
    require_for_sync(settings)
    report = Report()
    for partner in settings.partners:
        label = settings.credentials_label(partner)
        credentials = load_configured_credentials(partner.credentials, label)
        if on_partner is not None:
            on_partner(partner)
        counters = Counters()
        with connect(
            settings.api, partner.id, credentials, counters=counters, **connect_kwargs
        ) as client:
            for finding in _Checks(client, settings, partner, credentials is not None).run():
                report.findings.append(finding)
                if on_finding is not None:
                    on_finding(finding)
        report.requests += counters.requests
    return report


class _Checks:
    """The checks of one partner, in order; each may rely on what an earlier one learnt."""

    def __init__(
        self, client: ZeroTouchClient, settings: Settings, partner: PartnerSettings, token: bool
    ) -> None:
        self.client = client
        self.settings = settings
        self.partner = partner
        self.token = token
        self.section = partner.section_types[0]
        self.account = _Account()

    def run(self) -> Iterator[Finding]:
        """The findings, one per check; a check that could not run is ``skipped``."""
        first = self._customers_page()
        yield from first
        account = self.account
        steps: list[tuple[str, Callable[[str], Finding]]] = [
            (PACK_COMPANIES, lambda name: self._packing(name, account.companies, "companies")),
            (
                PACK_WORKSPACES,
                lambda name: self._packing(name, account.workspaces, "Workspace ids"),
            ),
            ("company and Workspace ids together", self._mixed),
            ("ids per request", self._ids_per_request),
            ("page tokens", self._page_tokens),
        ]
        answered = all(f.outcome != Outcome.FAILED for f in first)
        for name, check in steps:
            if not answered:
                yield Finding(name, Outcome.SKIPPED, "needs customers.list to answer")
                continue
            try:
                if name == PACK_COMPANIES:
                    self._probe()
                yield check(name)
            except (ApiError, ListingError) as exc:  # what went wrong is what it found
                yield Finding(name, Outcome.FAILED, str(exc))

    # --- the checks ------------------------------------------------------------------------

    def _customers_page(self) -> list[Finding]:
        """Token and scope, the partner id, and customers.list's page size: one call (two when
        a page of 1,000 is refused)."""
        path = f"/v1/partners/{self.partner.id}/customers"
        asked, refused = CUSTOMERS_PAGE_SIZE, ""
        try:
            try:
                body = self._customers(path, asked)
            except FatalApiError as exc:
                if exc.status != 400:
                    raise
                refused = f"; {asked} was refused ({str(exc)}), as the sync's fallback does"
                asked = CUSTOMERS_FALLBACK_PAGE_SIZE
                body = self._customers(path, asked)
        except ApiError as exc:
            return self._refused(exc)
        customers = body.get("customers") or []
        self.account.customers = [c for c in customers if isinstance(c, dict)]
        for c in self.account.customers:
            workspace = (c.get("googleWorkspaceAccount") or {}).get("customerId")
            if workspace and c.get("companyId"):
                self.account.workspace_of[str(c["companyId"])] = str(workspace)
        total = body.get("totalSize")
        more = "with a next page" if body.get("nextPageToken") else "no next page"
        if self.token:
            token = f"a token for {SCOPE} was fetched and customers.list accepted it"
        else:
            token = "auth.credentials = anonymous: no token; customers.list accepted the call"
        return [
            Finding("token and scope", Outcome.OK, token),
            Finding(
                "partner id",
                Outcome.OK,
                f"customers.list answered for partner {self.partner.id} "
                f"(totalSize {_count(total)})",
            ),
            Finding(
                "customers.list page size",
                Outcome.OK,
                f"asked for {asked}, {len(customers)} came back, {more}{refused}",
            ),
        ]

    def _customers(self, path: str, size: int) -> dict[str, Any]:
        return self.client.sender.request_json(
            "GET", path, "customers.list", params={"pageSize": size}
        )

    def _refused(self, exc: ApiError) -> list[Finding]:
        """The findings when the first call failed: which of token, scope or partner id."""
        text = str(exc)
        if isinstance(exc, AuthError) and exc.status is None:  # the token endpoint said no
            return [
                Finding("token and scope", Outcome.FAILED, text),
                Finding("partner id", Outcome.SKIPPED, "needs a token"),
                Finding("customers.list page size", Outcome.SKIPPED, "needs a token"),
            ]
        if exc.status == 404:
            return [
                Finding("token and scope", Outcome.OK, "customers.list accepted the token"),
                Finding("partner id", Outcome.FAILED, text),
                Finding("customers.list page size", Outcome.SKIPPED, "needs the partner id"),
            ]
        partner = "needs customers.list to answer"
        if exc.status == 403:
            partner += " (a 403 also comes for a partner id other than the linked account's)"
        return [
            Finding("token and scope", Outcome.FAILED, text),
            Finding("partner id", Outcome.SKIPPED, partner),
            Finding("customers.list page size", Outcome.SKIPPED, "needs customers.list to answer"),
        ]

    def _probe(self) -> None:
        """Find a few companies and Workspace accounts with devices, one call each, at most
        ``PROBES`` of each kind. Customers with a Workspace account come first, the account
        probed right after its company, so that the check of both in one request finds a
        customer with devices under each."""
        account = self.account
        calls = {True: 0, False: 0}  # probes of companies, of Workspace accounts
        found = {True: account.companies, False: account.workspaces}

        def probe(key: str, company: bool) -> None:
            if calls[company] == PROBES or len(found[company]) == SAMPLE:
                return
            calls[company] += 1
            total = self._total(companies=[key]) if company else self._total(workspaces=[key])
            if total:
                found[company].append(_Owner(key, company, total))

        keys = [str(c["companyId"]) for c in account.customers if c.get("companyId")]
        for key in sorted(keys, key=lambda k: k not in account.workspace_of):
            probe(key, True)
            if key in account.workspace_of:
                probe(account.workspace_of[key], False)

    def _packing(self, name: str, owners: list[_Owner], kind: str) -> Finding:
        """One request naming several owners counts what they count alone."""
        if len(owners) < 2:
            return Finding(
                name,
                Outcome.SKIPPED,
                f"fewer than two {kind} with devices among the first {PROBES} probed",
            )
        keys = [o.key for o in owners]

        def total(keys: list[str]) -> int:
            if owners[0].company:
                return self._total(companies=keys)
            return self._total(workspaces=keys)

        totals = [o.total for o in owners]
        together = total(keys)
        said = f"findByOwner naming {len(owners)} {kind}: totalSize {together:,}"
        if together == sum(totals):
            return Finding(name, Outcome.OK, f"{said} = {_sum(totals)}, each alone")
        # Ask each alone again: an account that changes between the calls is no verdict.
        again = [total([key]) for key in keys]
        if again != totals:
            return Finding(
                name,
                Outcome.SKIPPED,
                f"{said}; each alone {_sum(totals)}, then {_sum(again)}: the account changed "
                "between the calls; run the check again",
            )
        return Finding(
            name,
            Outcome.FAILED,
            f"{said}, but {_sum(totals)} = {sum(totals):,} each alone: a request naming several "
            "owners does not list what they list alone; set api.max_ids_per_request = 1",
        )

    def _mixed(self, name: str) -> Finding:
        """What a request naming a company and its Workspace account answers (the sync never
        sends one)."""
        never = "; the sync never names both in one request"
        pairs = []
        for company in self.account.companies:
            workspace = self.account.workspace_of.get(company.key)
            ws = next((w for w in self.account.workspaces if w.key == workspace), None)
            if ws is not None:
                pairs.append((company.total + ws.total, company, ws))
        if not pairs:
            return Finding(
                name, Outcome.SKIPPED, "no probed customer has devices under both of its ids"
            )
        size, company, ws = min(pairs, key=lambda p: p[0])
        if size > MIX_MAX_DEVICES:
            return Finding(
                name, Outcome.SKIPPED, f"the smallest such customer has {size:,} devices, too many"
            )
        alone_c = self._ids(companies=[company.key])
        alone_w = self._ids(workspaces=[ws.key])
        try:
            total, both = self._listing(companies=[company.key], workspaces=[ws.key])
        except FatalApiError as exc:
            if exc.status != 400:
                raise
            return Finding(name, Outcome.OK, f"refused with 400 ({str(exc)}){never}")
        union, common = alone_c | alone_w, alone_c & alone_w
        counted = (
            ""
            if total == len(both)
            else (f"; its totalSize {total:,} counts a device once per owner it matches")
        )
        seen = (
            f"{len(both):,} devices: company {company.key} alone lists {len(alone_c):,}, "
            f"Workspace account {ws.key} alone {len(alone_w):,}, {len(common):,} in both"
        )
        if union == common:
            kind = "union or intersection (both list the same devices)"
        elif both == union:
            kind = "the union"
        elif both == common:
            kind = "the intersection"
        else:
            kind = "neither the union nor the intersection"
        return Finding(name, Outcome.OK, f"{kind}, {seen}{counted}{never}")

    def _ids_per_request(self, name: str) -> Finding:
        """Whether one request may name ``api.max_ids_per_request`` ids; if not, the most it
        may (halving, then bisecting: a few calls)."""
        cap = self.settings.api.max_ids_per_request
        known = [str(c["companyId"]) for c in self.account.customers if c.get("companyId")]
        if not known:
            return Finding(name, Outcome.SKIPPED, "customers.list returned no customer")
        note = f"the sync names at most api.max_ids_per_request = {cap} in one request"
        refusal = self._refusal(known, cap)
        if refusal is None:
            return Finding(
                name, Outcome.OK, f"findByOwner naming {cap} company ids was accepted; {note}"
            )
        low, high = 0, cap  # the most accepted so far, the fewest refused
        while high - low > 1:
            middle = max(low * 2, 1) if low * 2 < high and not low else (low + high) // 2
            if self._refusal(known, middle) is None:
                low = middle
            else:
                high = middle
        if not low:
            return Finding(name, Outcome.FAILED, f"{refusal}, and so was a request naming 1")
        return Finding(
            name,
            Outcome.FAILED,
            f"{refusal}; the most accepted is {low}, and {note}: set it to {low}",
        )

    def _refusal(self, known: list[str], n: int) -> str | None:
        """None when findByOwner naming ``n`` company ids (the known ones, then again) is
        accepted; else what the refusal said."""
        try:
            self._total(companies=[known[i % len(known)] for i in range(n)])
        except FatalApiError as exc:
            if exc.status != 400:
                raise
            return f"findByOwner naming {n} company ids was refused ({exc})"
        return None

    def _page_tokens(self, name: str) -> Finding:
        """A listing of two pages read twice gives the same devices in the same order."""
        owners = [o for o in self.account.companies if o.total >= 2]
        if not owners:
            return Finding(name, Outcome.SKIPPED, "no probed company has two devices or more")
        owner = min(owners, key=lambda o: o.total)
        limit = min(PAGE_LIMIT, math.ceil(owner.total / 2))
        reads = [self._two_pages(owner.key, limit) for _ in range(2)]
        count = len(reads[0])
        said = f"2 pages of company {owner.key} (limit {limit}) read twice"
        if reads[0] == reads[1] and len(set(reads[0])) == count:
            return Finding(
                name, Outcome.OK, f"{said}: the same {count:,} devices in the same order"
            )
        first, second = set(reads[0]), set(reads[1])
        return Finding(
            name,
            Outcome.FAILED,
            f"{said}: {len(first ^ second):,} device(s) differ, {count - len(first)} repeated; "
            "page tokens may be offsets into a listing that changes (a sync could skip or "
            "repeat devices). A change in the account between the reads shows here too: run "
            "the check again",
        )

    # --- calls -----------------------------------------------------------------------------

    def _pages(
        self, companies: Sequence[str], workspaces: Sequence[str], limit: int
    ) -> Iterator[Page]:
        return self.client.iter_find_by_owner_pages(
            self.section,
            customer_ids=[int(c) for c in companies],
            workspace_ids=workspaces,
            limit=limit,
        )

    def _total(self, companies: Sequence[str] = (), workspaces: Sequence[str] = ()) -> int:
        """totalSize of a findByOwner request (one call, a page of one device)."""
        page = next(self._pages(list(companies), list(workspaces), 1))
        return page.total_size or 0

    def _listing(
        self, companies: Sequence[str] = (), workspaces: Sequence[str] = ()
    ) -> tuple[int, set[str]]:
        """(totalSize, the device ids) of a whole findByOwner listing."""
        total, ids = 0, set[str]()
        for page in self._pages(list(companies), list(workspaces), PAGE_LIMIT):
            total = page.total_size or 0
            ids.update(str(d.get("deviceId")) for d in page.items if isinstance(d, dict))
        return total, ids

    def _ids(self, companies: Sequence[str] = (), workspaces: Sequence[str] = ()) -> set[str]:
        return self._listing(companies, workspaces)[1]

    def _two_pages(self, company: str, limit: int) -> list[str]:
        pages = self._pages([company], [], limit)
        ids: list[str] = []
        for page in (next(pages, None), next(pages, None)):
            if page is not None:
                ids += [str(d.get("deviceId")) for d in page.items if isinstance(d, dict)]
        return ids


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "not given"


def _sum(totals: list[int]) -> str:
    """``38 + 30 + 113``."""
    return " + ".join(f"{t:,}" for t in totals)
