"""Eight demo stores in different but related niches, with realistic catalogs.

Catalogs are generated deterministically (same seed, same products) in the public
``/products.json`` shape, so a real store's dump can stand in for any of them.
"""

from __future__ import annotations

import random
import re
from typing import Any

from simulator.state import World

# Categories are Shopify's standard product taxonomy (ids are stable across its releases;
# checked against release 2025-01). A product type names one category; an item that has a
# more specific one gives it as (title, id, path), the path either whole or, for a category
# below the type's, from there on ("Tents" under "... > Camping & Hiking").
PET_SUPPLIES = "Animals & Pet Supplies > Pet Supplies"
KITCHEN_TOOLS = "Home & Garden > Kitchen & Dining > Kitchen Tools & Utensils"
TABLEWARE = "Home & Garden > Kitchen & Dining > Tableware"
_VERTICALS = {
    "Animals & Pet Supplies",
    "Apparel & Accessories",
    "Food, Beverages & Tobacco",
    "Home & Garden",
    "Luggage & Bags",
    "Media",
    "Office Supplies",
    "Sporting Goods",
}

# A store: its handle, name, vendors, product types, qualifiers and description phrases. A
# type is (name, taxonomy id, taxonomy path, items, price range[, words]); its words, where
# given, are its own "qualifiers" and "phrases" in place of the store's, and
# "item_qualifiers" for the items whose qualifiers differ from their type's. Each item is
# listed under up to three qualifiers (a roast, a size, a colour; "" is the item as it is;
# "{}" puts the item inside: "Men's {}"), and described with two phrases: a grinder comes
# in Matte Black, not Dark Roast, and is built for a consistent grind, not roasted in small
# batches.
NICHES: list[dict[str, Any]] = [
    {
        "handle": "coffee-corner",
        "name": "Coffee Corner",
        "vendors": ["Coffee Corner Roasters", "Hario", "Comandante", "Fellow"],
        "types": [
            (
                "Coffee Beans",
                "fb-1-3-1",
                "Food, Beverages & Tobacco > Beverages > Coffee > Coffee Beans & Ground Coffee",
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
                "hg-11-6-2-6",
                "Home & Garden > Kitchen & Dining > Kitchen Appliance Accessories > "
                "Coffee Maker & Espresso Machine Accessories > Coffee Grinders",
                [
                    "Hand Burr Grinder",
                    "Electric Burr Grinder",
                    "Conical Burr Mill",
                    "Travel Hand Grinder",
                    "Flat Burr Espresso Grinder",
                ],
                (45, 320),
                {
                    "qualifiers": [
                        "",
                        "Matte Black",
                        "Stainless Steel",
                        "Walnut",
                    ],
                    "phrases": [
                        "built for a consistent grind",
                        "burrs that stay sharp for years",
                        "made for slow mornings",
                    ],
                },
            ),
            (
                "Coffee Makers",
                "hg-11-7-4",
                "Home & Garden > Kitchen & Dining > Kitchen Appliances > Coffee Makers & Espresso Machines",
                [
                    ("Pour-Over Dripper", "hg-11-7-4-1", "Drip Coffee Makers"),
                    ("French Press", "hg-11-7-4-4", "French Presses"),
                    "AeroPress Coffee Maker",
                    ("Moka Pot", "hg-11-7-4-2", "Electric & Stovetop Espresso Pots"),
                    "Cold Brew Maker",
                    ("Chemex Brewer", "hg-11-7-4-1", "Drip Coffee Makers"),
                    ("Siphon Brewer", "hg-11-7-4-6", "Vacuum Coffee Makers"),
                ],
                (18, 140),
                {
                    "qualifiers": [
                        "",
                        "3-Cup",
                        "6-Cup",
                        "8-Cup",
                    ],
                    "phrases": [
                        "for a clean, sweet cup",
                        "brews in a few minutes",
                        "made for slow mornings",
                    ],
                    "item_qualifiers": {
                        "Moka Pot": ["", "3-Cup", "6-Cup", "Stainless Steel"],
                        "AeroPress Coffee Maker": ["", "Clear", "with Travel Case"],
                    },
                },
            ),
            (
                "Coffee Accessories",
                "hg-11-6-2",
                "Home & Garden > Kitchen & Dining > Kitchen Appliance Accessories > "
                "Coffee Maker & Espresso Machine Accessories",
                [
                    (
                        "Gooseneck Kettle",
                        "hg-11-2-3-15",
                        "Home & Garden > Kitchen & Dining > Cookware & Bakeware > Cookware > "
                        "Stovetop Kettles",
                    ),
                    ("Coffee Scale with Timer", "hg-11-8", KITCHEN_TOOLS),
                    ("Paper Filters", "hg-11-6-2-4", "Coffee Filters"),
                    ("Milk Frothing Pitcher", "hg-11-6-2-9", "Frothing Pitchers"),
                    "Espresso Tamper",
                    (
                        "Knock Box",
                        "hg-11-6-2-7-16",
                        "Coffee Maker & Espresso Machine Replacement Parts > Dump Boxes",
                    ),
                    (
                        "Coffee Canister",
                        "hg-11-4-6",
                        "Home & Garden > Kitchen & Dining > Food Storage > Food Storage Containers",
                    ),
                ],
                (8, 95),
                {
                    "qualifiers": [
                        "",
                        "Matte Black",
                        "Stainless Steel",
                        "Copper",
                    ],
                    "phrases": [
                        "a small upgrade to the daily brew",
                        "made for slow mornings",
                        "built to last",
                    ],
                    "item_qualifiers": {
                        "Paper Filters": ["", "Size 02", "Size 04", "Unbleached"],
                        "Coffee Scale with Timer": ["", "Black", "White"],
                    },
                },
            ),
        ],
        "qualifiers": ["", "Light Roast", "Medium Roast", "Dark Roast", "250g", "1kg"],
        "phrases": [
            "notes of stone fruit and dark chocolate",
            "roasted in small batches every week",
            "for a clean, sweet cup",
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
                "fb-1-14-2",
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
                "fb-1-14-2",
                "Food, Beverages & Tobacco > Beverages > Tea & Infusions > Tea",
                ["Ceremonial Matcha", "Culinary Matcha", "Organic Uji Matcha"],
                (18, 48),
            ),
            (
                "Teaware",
                "hg-11-10-2-2",
                "Home & Garden > Kitchen & Dining > Tableware > Coffee Servers & Teapots > Teapots",
                [
                    "Cast Iron Teapot",
                    "Glass Teapot with Infuser",
                    "Kyusu Teapot",
                    ("Gaiwan Set", "hg-11-10-1-2", f"{TABLEWARE} > Coffee & Tea Sets > Tea Sets"),
                    ("Matcha Whisk", "hg-11-8-77", f"{KITCHEN_TOOLS} > Whisks"),
                    ("Tea Strainer", "hg-11-8-75", f"{KITCHEN_TOOLS} > Tea Strainers"),
                    (
                        "Tea Tin",
                        "hg-11-4-6",
                        "Home & Garden > Kitchen & Dining > Food Storage > Food Storage Containers",
                    ),
                    (
                        "Electric Tea Kettle",
                        "hg-11-7-11",
                        "Home & Garden > Kitchen & Dining > Kitchen Appliances > Electric Kettles",
                    ),
                ],
                (8, 120),
                {
                    "qualifiers": [
                        "",
                        "Black",
                        "Celadon",
                        "Sand",
                    ],
                    "phrases": [
                        "made for a slow daily pot",
                        "easy to rinse after every brew",
                        "a quiet centrepiece for the tea table",
                    ],
                    "item_qualifiers": {
                        "Glass Teapot with Infuser": ["", "600 ml", "1 L"],
                        "Matcha Whisk": ["", "80 Prong", "100 Prong"],
                        "Tea Strainer": ["", "Stainless Steel", "Fine Mesh"],
                        "Electric Tea Kettle": ["", "Black", "Stainless Steel", "1.7 L"],
                    },
                },
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
                "hg-11-2-3",
                "Home & Garden > Kitchen & Dining > Cookware & Bakeware > Cookware",
                [
                    "Cast Iron Skillet",
                    "Carbon Steel Wok",
                    "Dutch Oven",
                    "Stainless Saucepan",
                    "Nonstick Frying Pan",
                    ("Stock Pot", "hg-11-2-3-14", "Stock Pots"),
                    "Grill Pan",
                ],
                (25, 380),
                {
                    "phrases": [
                        "heats evenly and lasts for generations",
                        "a workhorse for everyday cooking",
                        "oven safe",
                    ],
                    "item_qualifiers": {
                        "Dutch Oven": ["", "5.5 qt", "7.25 qt", "Enameled"],
                        "Stock Pot": ["", "8 qt", "12 qt", "Professional"],
                        "Stainless Saucepan": ["", "2 qt", "3 qt", "Professional"],
                        "Nonstick Frying Pan": ["", "10-inch", "12-inch", "Professional"],
                    },
                },
            ),
            (
                "Kitchen Knives",
                "hg-11-8-39",
                f"{KITCHEN_TOOLS} > Kitchen Knives",
                [
                    ("Chef's Knife", "hg-11-8-39-2", "Chef's Knives"),
                    ("Santoku Knife", "hg-11-8-39-4", "Santoku Knives"),
                    ("Paring Knife", "hg-11-8-39-3", "Paring Knives"),
                    ("Bread Knife", "hg-11-8-39-1", "Bread Knives"),
                    "Knife Block Set",
                    ("Whetstone Sharpener", "hg-11-8", KITCHEN_TOOLS),
                ],
                (19, 260),
                {
                    "qualifiers": [
                        "",
                        "Professional",
                        "Stainless Steel",
                        "Walnut",
                    ],
                    "phrases": [
                        "balanced, full-tang construction",
                        "holds a keen edge",
                        "a workhorse for everyday cooking",
                    ],
                    "item_qualifiers": {
                        "Whetstone Sharpener": ["", "1000/6000 Grit", "with Stand"],
                    },
                },
            ),
            (
                "Kitchen Tools",
                "hg-11-8",
                KITCHEN_TOOLS,
                [
                    ("Wooden Spoon Set", "hg-11-8-45", "Kitchen Utensil Sets"),
                    "Silicone Spatula",
                    "Digital Kitchen Scale",
                    "Mixing Bowl Set",
                    "End Grain Cutting Board",
                    "Mandoline Slicer",
                    "Pepper Mill",
                    ("Salad Spinner", "hg-11-8-64", "Salad Spinners"),
                ],
                (9, 85),
                {
                    "qualifiers": [
                        "",
                        "Black",
                        "White",
                        "Professional",
                    ],
                    "phrases": [
                        "dishwasher safe",
                        "a workhorse for everyday cooking",
                        "made to be used every day",
                    ],
                    "item_qualifiers": {
                        "Wooden Spoon Set": ["", "Beech", "Olive Wood", "5-Piece"],
                        "End Grain Cutting Board": ["", "Walnut", "Maple", "Large"],
                        "Pepper Mill": ["", "Walnut", "Black", "Brass"],
                    },
                },
            ),
            (
                "Bakeware",
                "hg-11-2-1",
                "Home & Garden > Kitchen & Dining > Cookware & Bakeware > Bakeware",
                [
                    "Sourdough Proofing Basket",
                    "Loaf Pan",
                    "Sheet Pan",
                    "Springform Pan",
                    "Bread Cloche",
                ],
                (12, 90),
                {
                    "qualifiers": [
                        "",
                        "Small",
                        "Large",
                        "Professional",
                    ],
                    "phrases": [
                        "bakes evenly and releases cleanly",
                        "a workhorse for everyday baking",
                        "made to be used every day",
                    ],
                },
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
                "lb-1",
                "Luggage & Bags > Backpacks",
                [
                    "Daypack 20L",
                    ("Hiking Backpack 45L", "lb-1-15", "Hiking Backpacks"),
                    ("Ultralight Pack", "lb-1-15", "Hiking Backpacks"),
                    "Hydration Pack",
                    ("Trekking Rucksack 65L", "lb-1-15", "Hiking Backpacks"),
                ],
                (45, 280),
                {
                    "qualifiers": [
                        "",
                        "Black",
                        "Forest Green",
                        "Slate Blue",
                    ],
                    "phrases": [
                        "tested on long days in the mountains",
                        "made with recycled fabrics",
                        "carries comfortably all day",
                    ],
                },
            ),
            (
                "Camping Gear",
                "sg-4-2",
                "Sporting Goods > Outdoor Recreation > Camping & Hiking",
                [
                    ("Two-Person Tent", "sg-4-2-17", "Tents"),
                    ("Down Sleeping Bag", "sg-4-2-14", "Sleeping Bags"),
                    ("Inflatable Sleeping Pad", "sg-4-2-15", "Sleeping Pads"),
                    (
                        "Camp Stove",
                        "hg-11-7-38",
                        "Home & Garden > Kitchen & Dining > Kitchen Appliances > "
                        "Portable Cooking Stoves",
                    ),
                    (
                        "Titanium Camp Mug",
                        "sg-4-2-2-1",
                        "Camping Cookware & Dinnerware > Camping Cups",
                    ),
                    ("Headlamp", "sg-4-2-3", "Camping Lights & Lanterns"),
                    ("Trekking Poles", "sg-4-2-8", "Hiking Poles"),
                    ("Camp Chair", "sg-4-2-1", "Camp Furniture"),
                ],
                (15, 420),
                {
                    "qualifiers": [
                        "",
                        "Lightweight",
                        "Ultralight",
                        "Olive",
                    ],
                    "phrases": [
                        "tested on long days in the mountains",
                        "packs down small",
                        "built for all-season adventures",
                    ],
                },
            ),
            (
                "Outdoor Apparel",
                "aa-1-10",
                "Apparel & Accessories > Clothing > Outerwear",
                [
                    ("Rain Shell Jacket", "aa-1-10-2-10", "Coats & Jackets > Rain Coats"),
                    "Fleece Pullover",
                    (
                        "Merino Base Layer",
                        "aa-1-1-2",
                        "Apparel & Accessories > Clothing > Activewear > Activewear Tops",
                    ),
                    ("Insulated Puffer Jacket", "aa-1-10-2-9", "Coats & Jackets > Puffer Jackets"),
                    (
                        "Hiking Pants",
                        "aa-1-1-1",
                        "Apparel & Accessories > Clothing > Activewear > Activewear Pants",
                    ),
                    (
                        "Wool Hiking Socks",
                        "aa-1-18-2",
                        "Apparel & Accessories > Clothing > Socks > Athletic Socks",
                    ),
                ],
                (18, 260),
            ),
        ],
        "qualifiers": ["", "Men's {}", "Women's {}", "Lightweight"],
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
                "os-4-9-9",
                "Office Supplies > General Office Supplies > Paper Products > Notebooks & Notepads",
                ["Dotted Notebook A5", "Leather Journal", "Recipe Journal", "Travel Notebook"],
                (9, 45),
                {
                    "qualifiers": [
                        "",
                        "Black",
                        "Tan",
                        "Pocket Size",
                    ],
                    "phrases": [
                        "printed on recycled paper",
                        "lies flat when open",
                        "the perfect gift for a curious mind",
                    ],
                },
            ),
            (
                "Bookends",
                "hg-3-12",
                "Home & Garden > Decor > Bookends",
                ["Brass Bookends", "Oak Bookends", "Marble Bookends"],
                (24, 70),
                {
                    "qualifiers": [
                        "",
                        "Small",
                        "Large",
                        "Set of Two",
                    ],
                    "phrases": [
                        "heavy enough for a full shelf",
                        "the perfect gift for a curious mind",
                        "a favourite of our booksellers",
                    ],
                },
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
                "Apparel & Accessories > Clothing > Clothing Tops",
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
                [
                    ("Wool Scarf", "aa-2-26", "Scarves & Shawls"),
                    ("Leather Belt", "aa-2-6", "Belts"),
                    ("Canvas Tote Bag", "lb-13", "Luggage & Bags > Tote Bags"),
                    ("Silk Bandana", "aa-2-4", "Bandanas & Headties"),
                    ("Knit Beanie", "aa-2-17-2", "Hats > Beanies"),
                ],
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
                f"{PET_SUPPLIES} > Dog Supplies",
                [
                    ("Rope Tug Toy", "ap-2-3-7", f"{PET_SUPPLIES} > Dog Supplies > Dog Toys"),
                    (
                        "Orthopedic Dog Bed",
                        "ap-2-9-8",
                        f"{PET_SUPPLIES} > Pet Beds > Orthopedic Beds",
                    ),
                    (
                        "Leather Dog Collar",
                        "ap-2-17-8",
                        f"{PET_SUPPLIES} > Pet Collars & Harnesses > Standard Collars",
                    ),
                    (
                        "Reflective Leash",
                        "ap-2-31-5",
                        f"{PET_SUPPLIES} > Pet Leashes > Standard Leashes",
                    ),
                    (
                        "Slow Feeder Bowl",
                        "ap-2-14-5",
                        f"{PET_SUPPLIES} > Pet Bowls, Feeders & Waterers > Slow Feeder Bowls",
                    ),
                    ("Dog Raincoat", "ap-2-6-10", f"{PET_SUPPLIES} > Pet Apparel > Pet Rain Coats"),
                    (
                        "Training Treat Pouch",
                        "ap-2-41-1",
                        f"{PET_SUPPLIES} > Pet Training Aids > Pet Training Clickers & Treat Dispensers",
                    ),
                ],
                (9, 140),
                {
                    "phrases": [
                        "loved by our shop dogs",
                        "vet-recommended",
                        "durable and easy to clean",
                    ],
                },
            ),
            (
                "Cat Supplies",
                "ap-2-2",
                f"{PET_SUPPLIES} > Cat Supplies",
                [
                    (
                        "Cat Scratching Post",
                        "ap-2-2-2-3",
                        f"{PET_SUPPLIES} > Cat Supplies > Cat Furniture > "
                        "Cat Scratchers & Scratching Posts",
                    ),
                    (
                        "Feather Wand Toy",
                        "ap-2-2-5-12",
                        f"{PET_SUPPLIES} > Cat Supplies > Cat Toys > Wands",
                    ),
                    (
                        "Covered Litter Box",
                        "ap-2-2-4-3",
                        f"{PET_SUPPLIES} > Cat Supplies > Cat Litter > Cat Litter Boxes",
                    ),
                    (
                        "Cat Window Perch",
                        "ap-2-2-2-6",
                        f"{PET_SUPPLIES} > Cat Supplies > Cat Furniture > Cat Window Beds & Perches",
                    ),
                    (
                        "Ceramic Cat Bowl",
                        "ap-2-14-2",
                        f"{PET_SUPPLIES} > Pet Bowls, Feeders & Waterers > Bowls",
                    ),
                ],
                (8, 120),
                {
                    "phrases": [
                        "loved by our shop cats",
                        "vet-recommended",
                        "durable and easy to clean",
                    ],
                },
            ),
            (
                "Pet Food",
                "ap-2-3-3-1",
                f"{PET_SUPPLIES} > Dog Supplies > Dog Food > Non-Prescription Dog Food",
                [
                    "Grain-Free Salmon Kibble",
                    (
                        "Freeze-Dried Chicken Treats",
                        "ap-2-3-9",
                        f"{PET_SUPPLIES} > Dog Supplies > Dog Treats",
                    ),
                    (
                        "Dental Chews",
                        "ap-2-36-1",
                        f"{PET_SUPPLIES} > Pet Oral Care Supplies > Dental Chews",
                    ),
                    "Puppy Starter Food",
                ],
                (12, 65),
                {
                    "qualifiers": [
                        "",
                        "Small Bag",
                        "Large Bag",
                        "Value Pack",
                    ],
                    "phrases": [
                        "made with natural ingredients",
                        "vet-recommended",
                        "loved by our shop dogs",
                    ],
                },
            ),
            (
                "Pet Grooming",
                "ap-2-26",
                f"{PET_SUPPLIES} > Pet Grooming Supplies",
                [
                    (
                        "Deshedding Brush",
                        "ap-2-26-1-3",
                        f"{PET_SUPPLIES} > Pet Grooming Supplies > Pet Combs & Brushes > Deshedders",
                    ),
                    (
                        "Oatmeal Pet Shampoo",
                        "ap-2-26-7-3",
                        f"{PET_SUPPLIES} > Pet Grooming Supplies > Pet Shampoo & Conditioner > Shampoos",
                    ),
                    (
                        "Pet Nail Clippers",
                        "ap-2-26-6",
                        f"{PET_SUPPLIES} > Pet Grooming Supplies > Pet Nail Tools",
                    ),
                ],
                (9, 40),
                {
                    "qualifiers": [
                        "",
                        "Travel Size",
                        "Large",
                    ],
                    "phrases": [
                        "vet-recommended",
                        "gentle on sensitive skin",
                        "durable and easy to clean",
                    ],
                },
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
                "hg-3-40-2",
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
                    (
                        "Ceramic Table Lamp",
                        "hg-13-5-5",
                        "Home & Garden > Lighting > Lamps > Table Lamps",
                    ),
                    (
                        "Rattan Pendant Light",
                        "hg-13-9-2",
                        "Home & Garden > Lighting > Lighting Fixtures > Ceiling Light Fixtures",
                    ),
                    (
                        "Brass Floor Lamp",
                        "hg-13-5-3",
                        "Home & Garden > Lighting > Lamps > Floor Lamps",
                    ),
                    (
                        "Linen Lamp Shade",
                        "hg-14-3",
                        "Home & Garden > Lighting Accessories > Lamp Shades",
                    ),
                ],
                (45, 320),
                {
                    "qualifiers": [
                        "",
                        "Natural",
                        "White",
                        "Charcoal",
                    ],
                    "item_qualifiers": {
                        "Ceramic Table Lamp": ["", "White", "Charcoal", "Sage"],
                        "Rattan Pendant Light": ["", "Natural", "Small", "Large"],
                        "Brass Floor Lamp": ["", "Antique", "Polished"],
                    },
                },
            ),
            (
                "Textiles",
                "hg-15",
                "Home & Garden > Linens & Bedding",
                [
                    (
                        "Linen Duvet Cover",
                        "hg-15-1-5",
                        "Home & Garden > Linens & Bedding > Bedding > Duvet Covers",
                    ),
                    (
                        "Wool Throw Blanket",
                        "hg-15-1-4",
                        "Home & Garden > Linens & Bedding > Bedding > Blankets",
                    ),
                    (
                        "Cotton Cushion Cover",
                        "hg-3-14",
                        "Home & Garden > Decor > Chair & Sofa Cushion Covers",
                    ),
                    ("Jute Area Rug", "hg-3-57", "Home & Garden > Decor > Rugs"),
                    (
                        "Waffle Bath Towels",
                        "hg-15-4-1-1",
                        "Home & Garden > Linens & Bedding > Towels > Bath Towels & Washcloths > "
                        "Bath Towels",
                    ),
                ],
                (25, 260),
                {
                    "qualifiers": [
                        "",
                        "Natural",
                        "Charcoal",
                        "Sage",
                        "Oatmeal",
                    ],
                },
            ),
            (
                "Tableware",
                "hg-11-10",
                "Home & Garden > Kitchen & Dining > Tableware",
                [
                    (
                        "Stoneware Dinner Plates",
                        "hg-11-10-4-3",
                        f"{TABLEWARE} > Dinnerware > Plates",
                    ),
                    ("Handmade Ceramic Mugs", "hg-11-10-5-5", f"{TABLEWARE} > Drinkware > Mugs"),
                    (
                        "Linen Napkins",
                        "hg-15-3-1",
                        "Home & Garden > Linens & Bedding > Table Linens > Cloth Napkins",
                    ),
                    (
                        "Glass Carafe",
                        "hg-11-10-7-7",
                        f"{TABLEWARE} > Serveware > Serving Pitchers & Carafes",
                    ),
                    ("Serving Bowl", "hg-11-10-4-1", f"{TABLEWARE} > Dinnerware > Bowls"),
                ],
                (18, 110),
                {
                    "qualifiers": [
                        "",
                        "Natural",
                        "Charcoal",
                        "Speckled",
                    ],
                    "item_qualifiers": {
                        "Linen Napkins": ["", "Natural", "Charcoal", "Set of 4"],
                        "Glass Carafe": ["", "0.5 L", "1 L"],
                    },
                },
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
    for product_type, type_category, type_path, items, (low, high), *own in niche["types"]:
        words = {**niche, **own[0]} if own else niche  # the type's qualifiers and phrases
        for entry in items:
            item, category_id, category_path = (
                (entry, type_category, type_path) if isinstance(entry, str) else entry
            )
            if category_path.split(" > ")[0] not in _VERTICALS:
                assert category_id.startswith(type_category + "-"), (item, category_id)
                category_path = f"{type_path} > {category_path}"
            choices = words.get("item_qualifiers", {}).get(item, words["qualifiers"])
            for qualifier in rng.sample(choices, k=min(3, len(choices))):
                if qualifier and set(qualifier.lower().split()) <= set(item.lower().split()):
                    continue  # "Organic Uji Matcha" is not listed again as "... Organic"
                title = qualifier.format(item) if "{}" in qualifier else f"{item} {qualifier}"
                title = title.strip()
                handle = _slug(title)
                if handle in handles:
                    continue
                handles.add(handle)
                vendor = rng.choice(niche["vendors"])
                price = round(rng.uniform(low, high), 0) - 0.01
                phrases = rng.sample(words["phrases"], k=2)
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
