"""Static vocabularies for the fleet generator: device models, company and person names.

Nothing here is random; ``fleet.py`` draws from these tables with a seeded RNG. Manufacturer
strings are what ``android.os.Build.MANUFACTURER`` reports (``samsung`` is lower-case on real
devices); model strings are ``Build.MODEL`` values or Chrome OS model names.
"""

from __future__ import annotations

from typing import NamedTuple

# Device kinds: which identifiers a model carries.
PHONE = 0  # cellular GSM/LTE: imei (and imei2 on dual-SIM units)
CDMA = 1  # cellular CDMA: meid (and meid2), no imei
WIFI = 2  # Wi-Fi only Android: serial + manufacturer + model
CHROME = 3  # Chrome OS: serial + chromeOsAttestedDeviceId, deviceType CHROME_OS


class Model(NamedTuple):
    """One device model the generator can produce."""

    manufacturer: str
    model: str
    kind: int
    weight: int
    serial_prefix: str


MODELS: tuple[Model, ...] = (
    Model("Google", "Pixel 8", PHONE, 10, "3A1"),
    Model("Google", "Pixel 8 Pro", PHONE, 4, "3B1"),
    Model("Google", "Pixel 7a", PHONE, 8, "2C2"),
    Model("Google", "Pixel 9", PHONE, 6, "4A1"),
    Model("Google", "Pixel Tablet", WIFI, 2, "4T1"),
    Model("samsung", "SM-S911B", PHONE, 12, "R5CW"),
    Model("samsung", "SM-A546B", PHONE, 14, "R58W"),
    Model("samsung", "SM-G736B", PHONE, 6, "R5CT"),
    Model("samsung", "SM-T636B", PHONE, 3, "R52T"),
    Model("samsung", "SM-X200", WIFI, 4, "R9PT"),
    Model("motorola", "moto g54 5G", PHONE, 6, "ZY22"),
    Model("motorola", "motorola edge 40", PHONE, 3, "ZY32"),
    Model("Zebra Technologies", "TC58", PHONE, 5, "2123"),
    Model("Zebra Technologies", "TC52", WIFI, 4, "2035"),
    Model("Zebra Technologies", "ET40", WIFI, 2, "2219"),
    Model("Honeywell", "CT40", PHONE, 2, "21H"),
    Model("HMD Global", "Nokia G22", PHONE, 3, "GZ2"),
    Model("Sony", "XQ-DQ54", PHONE, 2, "QV7"),
    Model("OnePlus", "CPH2449", PHONE, 2, "OP5"),
    Model("KYOCERA", "E6910", CDMA, 2, "KY6"),
    Model("LGE", "LM-V600VM", CDMA, 1, "LMV"),
    Model("HP", "HP Chromebook 14 G7", CHROME, 3, "5CD"),
    Model("Lenovo", "Lenovo 300e Chromebook Gen 3", CHROME, 3, "PF3"),
    Model("Acer", "Acer Chromebook Spin 514", CHROME, 2, "NXA"),
    Model("Dell", "Dell Latitude 5430 Chromebook", CHROME, 1, "CN0"),
    Model("ASUS", "ASUS Chromebook Flip CX5", CHROME, 1, "N7N"),
)

COMPANY_FIRST: tuple[str, ...] = (
    "Northwind",
    "Blue Harbor",
    "Contoso",
    "Fabrikam",
    "Adatum",
    "Litware",
    "Tailspin",
    "Wingtip",
    "Proseware",
    "Alpine",
    "Cedar Ridge",
    "Silver Lake",
    "Redwood",
    "Granite",
    "Brightline",
    "Harborview",
    "Kestrel",
    "Meridian",
    "Orchard",
    "Summit",
    "Müller & Söhne",
    "Société Lumière",
    "Østfold",
    "Nordsee",
    "Ibérica",
    "Zürcher",
    "Kraków",
    "Sakura",
    "Maple Leaf",
    "Southern Cross",
)
COMPANY_CORE: tuple[str, ...] = (
    "Logistics",
    "Field Services",
    "Health",
    "Retail",
    "Transport",
    "Energy",
    "Construction",
    "Foods",
    "Pharma",
    "Couriers",
    "Security",
    "Facilities",
    "Telecom",
    "Hospitality",
    "Manufacturing",
    "Utilities",
    "Distribution",
    "Education",
)
COMPANY_SUFFIX: tuple[str, ...] = (
    "Inc.",
    "Ltd",
    "GmbH",
    "AG",
    "S.A.",
    "B.V.",
    "LLC",
    "plc",
    "AB",
    "Oy",
    "Pty Ltd",
    "",
)
TLDS: tuple[str, ...] = ("com", "co.uk", "de", "fr", "nl", "se", "com.au", "ch", "io", "net")
FIRST_NAMES: tuple[str, ...] = (
    "alex",
    "maria",
    "jonas",
    "li",
    "priya",
    "sam",
    "fatima",
    "lukas",
    "chloe",
    "mateo",
    "yuki",
    "olivia",
    "noah",
    "amara",
    "erik",
    "sofia",
)
LAST_NAMES: tuple[str, ...] = (
    "schmidt",
    "garcia",
    "nguyen",
    "okafor",
    "smith",
    "kowalski",
    "rossi",
    "tanaka",
    "johansson",
    "dubois",
    "patel",
    "murphy",
)
ROLE_MAILBOXES: tuple[str, ...] = ("it-admin", "mobility", "helpdesk", "endpoint-team", "ops")

METADATA_KEYS: tuple[str, ...] = (
    "asset_tag",
    "department",
    "cost_center",
    "site",
    "assigned_to",
    "purchase_order",
    "warranty_until",
    "lease_id",
    "notes",
    "imported_from",
    "shelf",
    "contract",
    "region",
    "profile",
)
METADATA_VALUES: tuple[str, ...] = (
    "Warehouse 7",
    "Zürich HQ",
    "São Paulo – Vila Olímpia",
    "東京本社 3F",
    "Łódź magazyn",
    "Škoda fleet 🚚",
    "Αθήνα",
    "مستودع دبي",
    "Sales / EMEA",
    'He said "ship it"',
    "line one\nline two",
    "PO-2024-00017",
    "2026-12-31",
    "kiosk",
    "",  # an empty value is a legal map value
)
LONG_VALUE_UNIT = "Lorem ipsum dolor sit amet, ünïcödé ✓ "
