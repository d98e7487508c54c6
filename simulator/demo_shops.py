"""Eight demo stores in different but related niches, with realistic catalogs.

Catalogs are generated deterministically (same seed, same products) in the public
``/products.json`` shape, so a real store's dump can stand in for any of them.
"""

from __future__ import annotations

import random
import re
from typing import Any

from simulator.state import World

# (handle, name, currency, vendors, [(product type, taxonomy id, taxonomy path, items)],
#  qualifiers, description phrases)
NICHES: list[dict[str, Any]] = [
    {
        "handle": "coffee-corner",
        "name": "Coffee Corner",
        "vendors": ["Coffee Corner Roasters", "Hario", "Comandante", "Fellow"],
        "types": [
            (
                "Coffee Beans",
                "fb-2-1-1",
                "Food, Beverages & Tobacco > Beverages > Coffee > Coffee Beans",
                [
                    "Ethiopia Yirgacheffe",
                    "Colombia Huila",
                    "Kenya Nyeri AA",
                    "Guatemala Antigua",
                    "Brazil Cerrado",
                    "Sumatra Mandheling",
                    "Costa Rica Tarrazu",
                    "Espresso Blend",
                    "Decaf Swiss Water",
                    "Rwanda Bourbon",
                    "Peru Cajamarca",
                    "House Blend",
                ],
                (12, 28),
            ),
            (
                "Coffee Grinders",
                "hg-11-1-5",
                "Home & Garden > Kitchen & Dining > Kitchen Appliances > Coffee Grinders",
                [
                    "Hand Burr Grinder",
                    "Electric Burr Grinder",
                    "Conical Burr Mill",
                    "Travel Hand Grinder",
                    "Flat Burr Espresso Grinder",
                ],
                (45, 320),
            ),
            (
                "Coffee Makers",
                "hg-11-1-4",
                "Home & Garden > Kitchen & Dining > Kitchen Appliances > Coffee Makers & Espresso Machines",
                [
                    "Pour-Over Dripper",
                    "French Press",
                    "AeroPress Coffee Maker",
                    "Moka Pot",
                    "Cold Brew Maker",
                    "Chemex Brewer",
                    "Siphon Brewer",
                ],
                (18, 140),
            ),
            (
                "Coffee Accessories",
                "hg-11-2-3",
                "Home & Garden > Kitchen & Dining > Kitchenware > Coffee & Tea Accessories",
                [
                    "Gooseneck Kettle",
                    "Coffee Scale with Timer",
                    "Paper Filters",
                    "Milk Frothing Pitcher",
                    "Espresso Tamper",
                    "Knock Box",
                    "Coffee Canister",
                ],
                (8, 95),
            ),
        ],
        "qualifiers": ["", "Light Roast", "Medium Roast", "Dark Roast", "250g", "1kg"],
        "phrases": [
            "notes of stone fruit and dark chocolate",
            "roasted in small batches every week",
            "for a clean, sweet cup",
            "built for a consistent grind",
            "made for slow mornings",
        ],
    },
    {
        "handle": "leaf-and-kettle",
        "name": "Leaf & Kettle",
        "vendors": ["Leaf & Kettle", "Yunnan Sourcing Co", "Kyusu Works"],
        "types": [
            (
                "Loose Leaf Tea",
                "fb-2-6-1",
                "Food, Beverages & Tobacco > Beverages > Tea & Infusions > Tea",
                [
                    "Darjeeling First Flush",
                    "Assam Breakfast",
                    "Sencha Uji",
                    "Gyokuro",
                    "Dragon Well",
                    "Tie Guan Yin Oolong",
                    "Earl Grey Bergamot",
                    "Silver Needle White",
                    "Aged Pu-erh",
                    "Jasmine Pearls",
                    "Masala Chai",
                    "Rooibos Vanilla",
                    "Chamomile Blossom",
                ],
                (9, 42),
            ),
            (
                "Matcha",
                "fb-2-6-2",
                "Food, Beverages & Tobacco > Beverages > Tea & Infusions > Matcha",
                ["Ceremonial Matcha", "Culinary Matcha", "Organic Uji Matcha"],
                (18, 48),
            ),
            (
                "Teaware",
                "hg-11-2-3",
                "Home & Garden > Kitchen & Dining > Kitchenware > Coffee & Tea Accessories",
                [
                    "Cast Iron Teapot",
                    "Glass Teapot with Infuser",
                    "Kyusu Teapot",
                    "Gaiwan Set",
                    "Matcha Whisk",
                    "Tea Strainer",
                    "Tea Tin",
                    "Electric Tea Kettle",
                ],
                (8, 120),
            ),
        ],
        "qualifiers": ["", "50g", "100g", "Organic", "Gift Tin"],
        "phrases": [
            "hand-picked from high-altitude gardens",
            "a bright, floral cup",
            "steep at 80°C for three minutes",
            "sealed fresh in resealable pouches",
        ],
    },
    {
        "handle": "kitchen-craft",
        "name": "Kitchen Craft",
        "vendors": ["Kitchen Craft", "Lodge", "Victorinox", "Le Creuset"],
        "types": [
            (
                "Cookware",
                "hg-11-3-2",
                "Home & Garden > Kitchen & Dining > Cookware & Bakeware > Cookware",
                [
                    "Cast Iron Skillet",
                    "Carbon Steel Wok",
                    "Dutch Oven",
                    "Stainless Saucepan",
                    "Nonstick Frying Pan",
                    "Stock Pot",
                    "Grill Pan",
                ],
                (25, 380),
            ),
            (
                "Kitchen Knives",
                "hg-11-4-1",
                "Home & Garden > Kitchen & Dining > Kitchen Tools & Utensils > Kitchen Knives",
                [
                    "Chef's Knife",
                    "Santoku Knife",
                    "Paring Knife",
                    "Bread Knife",
                    "Knife Block Set",
                    "Whetstone Sharpener",
                ],
                (19, 260),
            ),
            (
                "Kitchen Tools",
                "hg-11-4-2",
                "Home & Garden > Kitchen & Dining > Kitchen Tools & Utensils",
                [
                    "Wooden Spoon Set",
                    "Silicone Spatula",
                    "Digital Kitchen Scale",
                    "Mixing Bowl Set",
                    "End Grain Cutting Board",
                    "Mandoline Slicer",
                    "Pepper Mill",
                    "Salad Spinner",
                ],
                (9, 85),
            ),
            (
                "Bakeware",
                "hg-11-3-1",
                "Home & Garden > Kitchen & Dining > Cookware & Bakeware > Bakeware",
                [
                    "Sourdough Proofing Basket",
                    "Loaf Pan",
                    "Sheet Pan",
                    "Springform Pan",
                    "Bread Cloche",
                ],
                (12, 90),
            ),
        ],
        "qualifiers": ["", "10-inch", "12-inch", "Enameled", "Professional"],
        "phrases": [
            "heats evenly and lasts for generations",
            "balanced, full-tang construction",
            "dishwasher safe",
            "a workhorse for everyday cooking",
        ],
    },
    {
        "handle": "trail-outfitters",
        "name": "Trail Outfitters",
        "vendors": ["Trail Outfitters", "Summit Gear", "Osprey Packs"],
        "types": [
            (
                "Backpacks",
                "lb-1-1",
                "Luggage & Bags > Backpacks",
                [
                    "Daypack 20L",
                    "Hiking Backpack 45L",
                    "Ultralight Pack",
                    "Hydration Pack",
                    "Trekking Rucksack 65L",
                ],
                (45, 280),
            ),
            (
                "Camping Gear",
                "sg-4-2",
                "Sporting Goods > Outdoor Recreation > Camping & Hiking",
                [
                    "Two-Person Tent",
                    "Down Sleeping Bag",
                    "Inflatable Sleeping Pad",
                    "Camp Stove",
                    "Titanium Camp Mug",
                    "Headlamp",
                    "Trekking Poles",
                    "Camp Chair",
                ],
                (15, 420),
            ),
            (
                "Outdoor Apparel",
                "aa-1-10",
                "Apparel & Accessories > Clothing > Outerwear",
                [
                    "Rain Shell Jacket",
                    "Fleece Pullover",
                    "Merino Base Layer",
                    "Insulated Puffer Jacket",
                    "Hiking Pants",
                    "Wool Hiking Socks",
                ],
                (18, 260),
            ),
        ],
        "qualifiers": ["", "Men's", "Women's", "Lightweight", "Waterproof"],
        "phrases": [
            "tested on long days in the mountains",
            "packs down small",
            "made with recycled fabrics",
            "built for all-season adventures",
        ],
    },
    {
        "handle": "bookish",
        "name": "Bookish",
        "vendors": ["Bookish Press", "Northwind Books", "Harbor House"],
        "types": [
            (
                "Books",
                "me-1-3",
                "Media > Books > Print Books",
                [
                    "Field Guide to Mountain Birds",
                    "The Coffee Roaster's Companion",
                    "Salt Fat Heat",
                    "A History of Tea",
                    "Sourdough at Home",
                    "Walking the Long Trail",
                    "The Modern Pantry",
                    "Houseplants for Beginners",
                    "The Art of Slow Living",
                    "Dog Training Made Simple",
                    "Wardrobe Essentials",
                    "Coastal Hikes",
                    "Baking with Grains",
                    "Tiny Apartment Style",
                ],
                (14, 48),
            ),
            (
                "Notebooks",
                "os-4-1",
                "Office Supplies > Paper Products > Notebooks & Notepads",
                ["Dotted Notebook A5", "Leather Journal", "Recipe Journal", "Travel Notebook"],
                (9, 45),
            ),
            (
                "Bookends",
                "hg-3-1",
                "Home & Garden > Decor > Bookends",
                ["Brass Bookends", "Oak Bookends", "Marble Bookends"],
                (24, 70),
            ),
        ],
        "qualifiers": ["", "Hardcover", "Paperback", "Signed Edition"],
        "phrases": [
            "a favourite of our booksellers",
            "beautifully illustrated",
            "the perfect gift for a curious mind",
            "printed on recycled paper",
        ],
    },
    {
        "handle": "thread-and-loom",
        "name": "Thread & Loom",
        "vendors": ["Thread & Loom", "Atelier Nord", "Common Cloth"],
        "types": [
            (
                "Dresses",
                "aa-1-4",
                "Apparel & Accessories > Clothing > Dresses",
                [
                    "Linen Midi Dress",
                    "Wrap Dress",
                    "Cotton Shirt Dress",
                    "Silk Slip Dress",
                    "Knit Sweater Dress",
                ],
                (55, 220),
            ),
            (
                "Tops",
                "aa-1-13",
                "Apparel & Accessories > Clothing > Shirts & Tops",
                [
                    "Organic Cotton Tee",
                    "Oversized Linen Shirt",
                    "Merino Crew Sweater",
                    "Cashmere Cardigan",
                    "Striped Breton Top",
                ],
                (29, 240),
            ),
            (
                "Accessories",
                "aa-2",
                "Apparel & Accessories > Clothing Accessories",
                ["Wool Scarf", "Leather Belt", "Canvas Tote Bag", "Silk Bandana", "Knit Beanie"],
                (19, 120),
            ),
            (
                "Trousers",
                "aa-1-12",
                "Apparel & Accessories > Clothing > Pants",
                [
                    "Wide-Leg Linen Trousers",
                    "Pleated Wool Trousers",
                    "Cotton Chinos",
                    "Drawstring Pants",
                ],
                (49, 180),
            ),
        ],
        "qualifiers": ["", "Sage", "Black", "Oatmeal", "Navy", "Rust"],
        "phrases": [
            "cut from breathable natural fibres",
            "made in small runs",
            "a relaxed everyday fit",
            "designed to be worn for years",
        ],
    },
    {
        "handle": "happy-paws",
        "name": "Happy Paws",
        "vendors": ["Happy Paws", "Barkwell", "Feline Fine"],
        "types": [
            (
                "Dog Supplies",
                "ap-2-3",
                "Animals & Pet Supplies > Pet Supplies > Dog Supplies",
                [
                    "Rope Tug Toy",
                    "Orthopedic Dog Bed",
                    "Leather Dog Collar",
                    "Reflective Leash",
                    "Slow Feeder Bowl",
                    "Dog Raincoat",
                    "Training Treat Pouch",
                ],
                (9, 140),
            ),
            (
                "Cat Supplies",
                "ap-2-2",
                "Animals & Pet Supplies > Pet Supplies > Cat Supplies",
                [
                    "Cat Scratching Post",
                    "Feather Wand Toy",
                    "Covered Litter Box",
                    "Cat Window Perch",
                    "Ceramic Cat Bowl",
                ],
                (8, 120),
            ),
            (
                "Pet Food",
                "ap-2-3-5",
                "Animals & Pet Supplies > Pet Supplies > Dog Supplies > Dog Food",
                [
                    "Grain-Free Salmon Kibble",
                    "Freeze-Dried Chicken Treats",
                    "Dental Chews",
                    "Puppy Starter Food",
                ],
                (12, 65),
            ),
            (
                "Pet Grooming",
                "ap-2-1",
                "Animals & Pet Supplies > Pet Supplies > Pet Grooming Supplies",
                ["Deshedding Brush", "Oatmeal Pet Shampoo", "Pet Nail Clippers"],
                (9, 40),
            ),
        ],
        "qualifiers": ["", "Small", "Medium", "Large"],
        "phrases": [
            "loved by our shop dogs",
            "vet-recommended",
            "durable and easy to clean",
            "made with natural ingredients",
        ],
    },
    {
        "handle": "nest-home",
        "name": "Nest Home",
        "vendors": ["Nest Home", "Lumen Studio", "Hearth & Co"],
        "types": [
            (
                "Candles",
                "hg-3-4",
                "Home & Garden > Decor > Home Fragrances > Candles",
                [
                    "Soy Wax Candle",
                    "Beeswax Taper Candles",
                    "Three-Wick Candle",
                    "Travel Tin Candle",
                ],
                (14, 58),
            ),
            (
                "Lighting",
                "hg-13",
                "Home & Garden > Lighting",
                [
                    "Ceramic Table Lamp",
                    "Rattan Pendant Light",
                    "Brass Floor Lamp",
                    "Linen Lamp Shade",
                ],
                (45, 320),
            ),
            (
                "Textiles",
                "hg-10",
                "Home & Garden > Linens & Bedding",
                [
                    "Linen Duvet Cover",
                    "Wool Throw Blanket",
                    "Cotton Cushion Cover",
                    "Jute Area Rug",
                    "Waffle Bath Towels",
                ],
                (25, 260),
            ),
            (
                "Tableware",
                "hg-11-6",
                "Home & Garden > Kitchen & Dining > Tableware",
                [
                    "Stoneware Dinner Plates",
                    "Handmade Ceramic Mugs",
                    "Linen Napkins",
                    "Glass Carafe",
                    "Serving Bowl",
                ],
                (18, 110),
            ),
        ],
        "qualifiers": ["", "Fig & Cedar", "Sea Salt", "Natural", "Charcoal"],
        "phrases": [
            "brings warmth to any room",
            "handmade by independent makers",
            "natural materials, quietly beautiful",
            "made to be used every day",
        ],
    },
]

_COLOURS = ["#6f4e37", "#2f6f4f", "#8a5a44", "#3d5a80", "#7b2d26", "#52796f", "#9c6644", "#5c677d"]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def catalog(niche: dict[str, Any], *, seed: int = 7) -> list[dict[str, Any]]:
    """The niche's products in the products.json shape (50-300 per store)."""
    rng = random.Random(f"{niche['handle']}:{seed}")
    products: list[dict[str, Any]] = []
    handles: set[str] = set()
    for product_type, category_id, category_path, items, (low, high) in niche["types"]:
        for item in items:
            qualifiers = rng.sample(niche["qualifiers"], k=min(3, len(niche["qualifiers"])))
            for qualifier in qualifiers:
                title = f"{item} {qualifier}".strip() if qualifier else item
                handle = _slug(title)
                if handle in handles:
                    continue
                handles.add(handle)
                vendor = rng.choice(niche["vendors"])
                price = round(rng.uniform(low, high), 0) - 0.01
                phrases = rng.sample(niche["phrases"], k=2)
                body = (
                    f"<p>{title} from {vendor}: {phrases[0]}.</p>"
                    f"<p>{product_type} chosen by the {niche['name']} team, {phrases[1]}.</p>"
                )
                products.append(
                    {
                        "title": title,
                        "handle": handle,
                        "body_html": body,
                        "vendor": vendor,
                        "product_type": product_type,
                        "tags": sorted(
                            {product_type.lower(), _slug(item).split("-")[0], niche["handle"]}
                        ),
                        "category": {
                            "id": f"gid://shopify/TaxonomyCategory/{category_id}",
                            "name": category_path.rsplit(" > ", 1)[-1],
                            "full_name": category_path,
                        },
                        "variants": [
                            {
                                "title": "Default Title",
                                "price": f"{price:.2f}",
                                "sku": f"{niche['handle'][:3].upper()}-{len(products) + 1:04d}",
                                "inventory_quantity": 0
                                if rng.random() < 0.04
                                else rng.randint(3, 80),
                            }
                        ],
                        "images": [],
                        "status": "draft" if rng.random() < 0.03 else "active",
                    }
                )
    return products


def load_into(world: World) -> None:
    for index, niche in enumerate(NICHES):
        shop = world.add_shop(
            niche["handle"],
            {"shop": {"name": niche["name"], "currency": "USD"}, "products": catalog(niche)},
        )
        colour = _COLOURS[index % len(_COLOURS)].lstrip("#")
        for product in shop.products.values():
            product["images"] = [
                {
                    "id": product["id"],
                    "src": f"{world.public_url}/cdn/img/{colour}/{product['handle']}.svg",
                    "alt": product["title"],
                }
            ]
