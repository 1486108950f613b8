"""Write the dbt seeds ``users.csv`` and ``products.csv``, the same bytes on every run.

Why a generator instead of hand-written CSVs: the producer draws its user and product ids
and prices from these files, and dbt joins on them (``user_country``, ``revenue``), so they
must be plausible, stable and reproducible. A fixed seed and only ``random.Random`` methods
whose output is stable across CPython versions keep them byte-identical.

Run: ``python scripts/make_seeds.py [OUT_DIR]`` (default ``dbt/seeds``).
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import sys
from pathlib import Path
from typing import Final

SEED: Final = 20240601
USER_COUNT: Final = 1000
PRODUCT_COUNT: Final = 200
SIGNUP_FIRST: Final = dt.date(2021, 1, 1)
SIGNUP_LAST: Final = dt.date(2025, 12, 31)

# ISO-3166 alpha-2 codes, weighted roughly like a European/North-American web shop.
COUNTRIES: Final = (
    ("FR", 22), ("US", 18), ("GB", 10), ("DE", 10), ("ES", 6), ("IT", 6), ("BE", 4),
    ("NL", 4), ("CA", 4), ("CH", 3), ("PT", 2), ("IE", 2), ("SE", 2), ("PL", 2),
    ("BR", 1), ("MA", 1), ("JP", 1), ("AU", 1), ("IN", 1),
)
FIRST_NAMES: Final = (
    "Alice", "Amine", "Anna", "Arthur", "Camille", "Chloe", "David", "Elena", "Emma",
    "Ethan", "Fatima", "Gabriel", "Hugo", "Ines", "Jade", "James", "Jonas", "Julia",
    "Karim", "Laura", "Leo", "Lina", "Lucas", "Louise", "Manon", "Maria", "Mateo",
    "Mia", "Noah", "Nora", "Olivia", "Omar", "Paul", "Raphael", "Rose", "Sara",
    "Sofia", "Theo", "Tom", "Yasmine", "Yuki", "Zoe",
)
LAST_NAMES: Final = (
    "Bernard", "Brown", "Costa", "Dubois", "Durand", "Fischer", "Garcia", "Girard",
    "Jansen", "Johnson", "Kowalski", "Laurent", "Lefebvre", "Martin", "Meyer", "Moreau",
    "Muller", "Nakamura", "Nielsen", "Petit", "Roux", "Rossi", "Schmidt", "Silva",
    "Smith", "Tanaka", "Thomas", "Weber", "Williams", "Wilson",
)
# category -> (nouns, low price, high price)
CATEGORIES: Final = {
    "electronics": (("Headphones", "Speaker", "Charger", "Keyboard", "Mouse", "Webcam",
                     "Smartwatch", "Tablet"), 9.0, 899.0),
    "books": (("Novel", "Cookbook", "Travel Guide", "Biography", "Comic", "Atlas"), 4.0, 45.0),
    "clothing": (("T-Shirt", "Hoodie", "Jacket", "Jeans", "Sneakers", "Scarf", "Cap"),
                 8.0, 180.0),
    "home": (("Lamp", "Mug", "Blanket", "Vase", "Cushion", "Frying Pan", "Kettle"),
             6.0, 250.0),
    "beauty": (("Shampoo", "Face Cream", "Perfume", "Lipstick", "Soap Bar"), 3.0, 120.0),
    "sports": (("Yoga Mat", "Dumbbell", "Water Bottle", "Tennis Racket", "Backpack"),
               5.0, 300.0),
    "toys": (("Puzzle", "Board Game", "Plush Bear", "Building Set", "Kite"), 5.0, 90.0),
}
ADJECTIVES: Final = (
    "Classic", "Compact", "Deluxe", "Eco", "Essential", "Lite", "Nordic", "Premium",
    "Pro", "Smart", "Urban", "Vintage",
)


def users(rng: random.Random) -> list[dict[str, str]]:
    codes = [c for c, _ in COUNTRIES]
    weights = [w for _, w in COUNTRIES]
    span = (SIGNUP_LAST - SIGNUP_FIRST).days
    rows = []
    for i in range(1, USER_COUNT + 1):
        rows.append({
            "user_id": f"u_{i:06d}",
            "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            "country": rng.choices(codes, weights)[0],
            "signup_date": (SIGNUP_FIRST + dt.timedelta(days=rng.randrange(span + 1))).isoformat(),
        })
    return rows


def products(rng: random.Random) -> list[dict[str, str]]:
    names = sorted(CATEGORIES)
    rows = []
    for i in range(1, PRODUCT_COUNT + 1):
        category = rng.choice(names)
        nouns, low, high = CATEGORIES[category]
        # Log-uniform: many cheap items, a few expensive ones, as in real catalogues.
        price = low * (high / low) ** rng.random()
        # Shop prices end in .99, .49 or a round number.
        cents = rng.choice((99, 99, 49, 0))
        rows.append({
            "product_id": f"p_{i:04d}",
            "name": f"{rng.choice(ADJECTIVES)} {rng.choice(nouns)}",
            "category": category,
            "price": f"{max(int(price), 1) + cents / 100:.2f}",
        })
    return rows


def write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "dbt" / "seeds"
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    write(out / "users.csv", users(rng))
    write(out / "products.csv", products(rng))


if __name__ == "__main__":
    main(sys.argv)
