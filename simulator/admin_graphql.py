"""The part of the Admin GraphQL API the app uses, executed by graphql-core.

Queries are parsed and validated against a real schema (so a typo in the app's query
fails here as it would at Shopify), costed the way Shopify documents (objects 1, scalars
0, connections 2 + first x node cost, mutations 10) and charged to the shop's leaky bucket.
https://shopify.dev/docs/api/usage/limits#cost-calculation
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
import time
from decimal import Decimal
from typing import Any

from graphql import (
    FieldNode,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationDefinitionNode,
    build_schema,
    get_named_type,
    graphql_sync,
    is_leaf_type,
    parse,
    validate,
)
from graphql.error import GraphQLError

from simulator.state import Shop, World

SDL = """
scalar DateTime
scalar URL
scalar Decimal
scalar JSON

enum ProductStatus { ACTIVE ARCHIVED DRAFT }
enum CurrencyCode {
  AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL
  BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ERN
  ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR
  IQD IRR ISK JMD JOD JPY KES KGS KHR KID KMF KRW KWD KYD KZT LAK LBP LKR LRD LSL
  LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR
  NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD
  SHP SLL SOS SRD SSP STN SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD
  UYU UZS VED VES VND VUV WST XAF XCD XOF XPF XXX YER ZAR ZMW
}
enum BulkOperationStatus { CANCELED CANCELING COMPLETED CREATED EXPIRED FAILED RUNNING }
enum BulkOperationType { QUERY MUTATION }

type Query {
  shop: Shop!
  currentAppInstallation: AppInstallation!
  products(first: Int, after: String, query: String): ProductConnection!
  product(id: ID!): Product
  productsCount(query: String): Count
  currentBulkOperation(type: BulkOperationType): BulkOperation
  themes(first: Int, roles: [ThemeRole!]): OnlineStoreThemeConnection
  bulkOperation(id: ID!): BulkOperation
  webPixel(id: ID): WebPixel
  order(id: ID!): Order
}
type Order {
  id: ID!
  name: String!
  createdAt: DateTime!
  cancelledAt: DateTime
  test: Boolean!
  currencyCode: CurrencyCode!
  totalPriceSet: MoneyBag!
  subtotalLineItemsQuantity: Int!
  totalRefundedSet: MoneyBag!
  refunds(first: Int): [Refund!]!
}
type Refund { id: ID! }
type MoneyBag { shopMoney: MoneyV2! }

type Mutation {
  bulkOperationRunQuery(query: String!): BulkOperationRunQueryPayload
  webPixelCreate(webPixel: WebPixelInput!): WebPixelCreatePayload
  webPixelUpdate(id: ID!, webPixel: WebPixelInput!): WebPixelUpdatePayload
  metafieldsSet(metafields: [MetafieldsSetInput!]!): MetafieldsSetPayload
}
input MetafieldsSetInput { ownerId: ID! namespace: String! key: String! type: String! value: String! }
type Metafield { id: ID! namespace: String! key: String! type: String! value: String! }
enum MetafieldsSetUserErrorCode { INVALID INVALID_TYPE INVALID_VALUE BLANK }
type MetafieldsSetUserError { code: MetafieldsSetUserErrorCode field: [String!] message: String! }
type MetafieldsSetPayload { metafields: [Metafield!] userErrors: [MetafieldsSetUserError!]! }
type WebPixel { id: ID! settings: JSON! }
input WebPixelInput { settings: JSON! }
enum ErrorsWebPixelUserErrorCode { BLANK TAKEN NOT_FOUND INVALID_SETTINGS UNABLE_TO_DELETE }
type ErrorsWebPixelUserError { code: ErrorsWebPixelUserErrorCode field: [String!] message: String! }
type WebPixelCreatePayload { webPixel: WebPixel userErrors: [ErrorsWebPixelUserError!]! }
type WebPixelUpdatePayload { webPixel: WebPixel userErrors: [ErrorsWebPixelUserError!]! }
type BulkOperationRunQueryPayload { bulkOperation: BulkOperation userErrors: [UserError!]! }
type UserError { field: [String!] message: String! }
type BulkOperation {
  id: ID!
  status: BulkOperationStatus!
  errorCode: String
  objectCount: String!
  url: URL
  partialDataUrl: URL
  createdAt: DateTime!
  completedAt: DateTime
}
type Count { count: Int! precision: String! }

enum ThemeRole { MAIN UNPUBLISHED DEVELOPMENT DEMO ARCHIVED LOCKED }
type OnlineStoreThemeConnection { nodes: [OnlineStoreTheme!]! }
type OnlineStoreTheme {
  id: ID!
  name: String!
  role: ThemeRole!
  files(filenames: [String!], first: Int): OnlineStoreThemeFileConnection
}
type OnlineStoreThemeFileConnection { nodes: [OnlineStoreThemeFile!]! }
type OnlineStoreThemeFile { filename: String! body: OnlineStoreThemeFileBody! }
union OnlineStoreThemeFileBody = OnlineStoreThemeFileBodyText | OnlineStoreThemeFileBodyUrl
type OnlineStoreThemeFileBodyText { content: String! }
type OnlineStoreThemeFileBodyUrl { url: URL! }

type Shop {
  id: ID!
  name: String!
  myshopifyDomain: String!
  currencyCode: CurrencyCode!
  ianaTimezone: String!
  primaryDomain: Domain!
  plan: ShopPlan!
}
type Domain { url: URL! host: String! }
type ShopPlan {
  displayName: String! @deprecated(reason: "Use publicDisplayName.")
  publicDisplayName: String!
  partnerDevelopment: Boolean!
  shopifyPlus: Boolean!
}
type AppInstallation { id: ID! accessScopes: [AccessScope!]! }
type AccessScope { handle: String! }

type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String }
type ProductConnection { edges: [ProductEdge!]! nodes: [Product!]! pageInfo: PageInfo! }
type ProductEdge { cursor: String! node: Product! }

type Product {
  id: ID!
  legacyResourceId: String!
  handle: String!
  title: String!
  description(truncateAt: Int): String!
  descriptionHtml: String!
  vendor: String!
  productType: String!
  tags: [String!]!
  status: ProductStatus!
  isGiftCard: Boolean!
  onlineStoreUrl: URL
  totalInventory: Int!
  tracksInventory: Boolean!
  category: TaxonomyCategory
  priceRangeV2: ProductPriceRangeV2!
  featuredMedia: Media
  createdAt: DateTime!
  updatedAt: DateTime!
  publishedAt: DateTime
}
type TaxonomyCategory { id: ID! name: String! fullName: String! }
type ProductPriceRangeV2 { minVariantPrice: MoneyV2! maxVariantPrice: MoneyV2! }
type MoneyV2 { amount: Decimal! currencyCode: CurrencyCode! }
type Media { id: ID! alt: String preview: MediaPreviewImage }
type MediaPreviewImage { image: Image }
type Image { url: URL! altText: String width: Int height: Int }
"""

SCHEMA = build_schema(SDL)
MUTATION_COST = 10

_TAG_RE = re.compile(r"<[^>]+>")


def _strip_html(value: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(_TAG_RE.sub(" ", value or ""))).strip()


def product_gid(product_id: int) -> str:
    return f"gid://shopify/Product/{product_id}"


def _cursor(product_id: int) -> str:
    return base64.urlsafe_b64encode(f"product:{product_id}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":", 1)[1])
    except (ValueError, IndexError, UnicodeDecodeError):
        raise GraphQLError("Invalid cursor") from None


def _tags(product: dict[str, Any]) -> list[str]:
    tags = product.get("tags") or []
    if isinstance(tags, str):
        tags = tags.split(",")
    return [tag.strip() for tag in tags if tag.strip()]


def _prices(product: dict[str, Any]) -> list[Decimal]:
    prices = [Decimal(str(v.get("price") or "0")) for v in product.get("variants") or []]
    return prices or [Decimal("0")]


def _inventory(product: dict[str, Any]) -> int:
    total = 0
    for variant in product.get("variants") or []:
        if "inventory_quantity" in variant:
            total += int(variant["inventory_quantity"] or 0)
        elif variant.get("available", True):
            total += 10
    return total


def product_node(world: World, shop: Shop, product: dict[str, Any]) -> dict[str, Any]:
    """A products.json product as the Admin API's Product object."""
    status = str(product.get("status", "active")).upper()
    published = bool(product.get("published_at")) and product.get("published", True)
    online_url = (
        f"{world.storefront_url(shop)}/products/{product['handle']}"
        if status == "ACTIVE" and published
        else None
    )
    prices = _prices(product)
    images = product.get("images") or []
    image = images[0] if images else None
    category = product.get("category")
    return {
        "id": product_gid(product["id"]),
        "legacyResourceId": str(product["id"]),
        "handle": product.get("handle") or "",
        "title": product.get("title") or "",
        "description": _strip_html(product.get("body_html") or ""),
        "descriptionHtml": product.get("body_html") or "",
        "vendor": product.get("vendor") or "",
        "productType": product.get("product_type") or "",
        "tags": _tags(product),
        "status": status,
        "isGiftCard": bool(product.get("is_gift_card")),
        "onlineStoreUrl": online_url,
        "totalInventory": _inventory(product),
        "tracksInventory": True,
        "category": (
            {
                "id": category.get("id", ""),
                "name": category.get("name", ""),
                "fullName": category.get("full_name") or category.get("fullName", ""),
            }
            if isinstance(category, dict)
            else None
        ),
        "priceRangeV2": {
            "minVariantPrice": {"amount": str(min(prices)), "currencyCode": shop.currency},
            "maxVariantPrice": {"amount": str(max(prices)), "currencyCode": shop.currency},
        },
        "featuredMedia": (
            {
                "id": f"gid://shopify/MediaImage/{image.get('id', product['id'])}",
                "alt": image.get("alt"),
                "preview": {"image": {"url": image.get("src"), "altText": image.get("alt")}},
            }
            if image and image.get("src")
            else None
        ),
        "createdAt": product.get("created_at"),
        "updatedAt": product.get("updated_at"),
        "publishedAt": product.get("published_at"),
    }


def _resolve_products(root: dict[str, Any], info, first: int | None = None, after=None, query=None):
    world: World = info.context["world"]
    shop: Shop = info.context["shop"]
    if info.context.get("bulk"):
        first = 10**9  # a bulk operation reads the whole connection
    elif first is None or first < 1 or first > 250:
        raise GraphQLError("`first` must be between 1 and 250 for products.")
    start_after = _decode_cursor(after) if after else None
    with world.lock:
        ids = sorted(shop.products)
        if start_after is not None:
            ids = [pid for pid in ids if pid > start_after]
        page = ids[:first]
        rows = [shop.products[pid] for pid in page]
    nodes = [product_node(world, shop, product) for product in rows]
    edges = [{"cursor": _cursor(p["id"]), "node": n} for p, n in zip(rows, nodes, strict=True)]
    return {
        "edges": edges,
        "nodes": nodes,
        "pageInfo": {
            "hasNextPage": len(ids) > first,
            "hasPreviousPage": start_after is not None,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


def _resolve_product(root, info, id: str):  # noqa: A002 - the GraphQL argument name
    world: World = info.context["world"]
    shop: Shop = info.context["shop"]
    try:
        product_id = int(str(id).rsplit("/", 1)[-1])
    except ValueError:
        return None
    product = shop.products.get(product_id)
    return product_node(world, shop, product) if product else None


def _resolve_order(root, info, id: str):  # noqa: A002 - the GraphQL argument name
    """One of the shop's orders (the storefront checkout's); null when the id is not one."""
    shop: Shop = info.context["shop"]
    try:
        order = shop.orders.get(int(str(id).rsplit("/", 1)[-1]))
    except ValueError:
        return None
    if order is None:
        return None
    money = {"amount": order["total"], "currencyCode": order["currency"]}
    return {
        "id": f"gid://shopify/Order/{order['id']}",
        "name": order["name"],
        "createdAt": order["created_at"],
        "cancelledAt": order.get("cancelled_at"),
        "test": order.get("test", False),
        "currencyCode": order["currency"],
        "totalPriceSet": {"shopMoney": money},
        "subtotalLineItemsQuantity": sum(line["quantity"] for line in order["line_items"]),
        "totalRefundedSet": {"shopMoney": {
            "amount": str(sum((Decimal(str(r["amount"])) for r in order["refunds"]), Decimal(0))),
            "currencyCode": order["currency"]}},
        "refunds": [{"id": f"gid://shopify/Refund/{r['id']}"} for r in order["refunds"]],
    }  # fmt: skip


def _resolve_shop(root, info):
    world: World = info.context["world"]
    shop: Shop = info.context["shop"]
    url = world.storefront_url(shop)
    return {
        "id": f"gid://shopify/Shop/{abs(hash(shop.handle)) % 10**9}",
        "name": shop.name,
        "myshopifyDomain": shop.domain,
        "currencyCode": shop.currency,
        "ianaTimezone": shop.time_zone,
        "primaryDomain": {"url": url, "host": url.split("://", 1)[1]},
        "plan": {
            "displayName": shop.plan,
            "publicDisplayName": shop.plan,
            "partnerDevelopment": shop.plan == "Development",
            "shopifyPlus": shop.plan in {"Plus", "Plus Trial"},
        },
    }


def _installation_id(shop: Shop) -> str:
    return f"gid://shopify/AppInstallation/{shop.handle}"


def _resolve_installation(root, info):
    shop: Shop = info.context["shop"]
    return {"id": _installation_id(shop),
            "accessScopes": [{"handle": scope} for scope in shop.granted_scopes]}  # fmt: skip


# The metafield types the app's own metafields may take here (Shopify has many more).
_METAFIELD_VALUES = {"boolean": ("true", "false"), "single_line_text_field": None}


def _resolve_metafields_set(root, info, metafields):
    """The app's metafields on its own installation only (what a theme app extension reads
    as ``app.metafields``); like Shopify, all or nothing, at most 25 at once."""
    world: World = info.context["world"]
    shop: Shop = info.context["shop"]
    errors = []
    if not 0 < len(metafields) <= 25:
        errors.append({"code": "INVALID", "field": ["metafields"],
                       "message": "Between 1 and 25 metafields can be set at once."})  # fmt: skip
    for n, metafield in enumerate(metafields):
        allowed = _METAFIELD_VALUES.get(metafield["type"], ())
        if metafield["ownerId"] != _installation_id(shop):
            errors.append({"code": "INVALID", "field": ["metafields", str(n), "ownerId"],
                           "message": "Owner does not exist or is not this app's."})  # fmt: skip
        elif allowed == ():
            errors.append({"code": "INVALID_TYPE", "field": ["metafields", str(n), "type"],
                           "message": f"Type {metafield['type']!r} is not supported."})  # fmt: skip
        elif allowed is not None and metafield["value"] not in allowed:
            errors.append({"code": "INVALID_VALUE", "field": ["metafields", str(n), "value"],
                           "message": "Value is invalid for its type."})  # fmt: skip
    if errors:
        return {"metafields": None, "userErrors": errors}
    saved = []
    with world.lock:
        for metafield in metafields:
            entry = {"type": metafield["type"], "value": metafield["value"]}
            shop.app_metafields.setdefault(metafield["namespace"], {})[metafield["key"]] = entry
            saved.append({"id": f"gid://shopify/Metafield/{world.new_id()}",
                          "namespace": metafield["namespace"], "key": metafield["key"], **entry})  # fmt: skip
    return {"metafields": saved, "userErrors": []}


def _resolve_count(root, info, query=None):
    return {"count": len(info.context["shop"].products), "precision": "EXACT"}


def _bulk_node(world: World, shop: Shop, operation: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": operation["id"],
        "status": operation["status"],
        "errorCode": operation.get("errorCode"),
        "objectCount": str(operation.get("objectCount", 0)),
        "url": f"https://{shop.domain}/_sim/bulk/{operation['key']}.jsonl"
        if operation["status"] == "COMPLETED"
        else None,
        "partialDataUrl": None,
        "createdAt": operation["createdAt"],
        "completedAt": operation.get("completedAt"),
    }


def _resolve_current_bulk(root, info, type=None):  # noqa: A002 - the GraphQL argument name
    shop: Shop = info.context["shop"]
    operation = shop.bulk_operations[-1] if shop.bulk_operations else None
    return _bulk_node(info.context["world"], shop, operation) if operation else None


def _resolve_bulk(root, info, id: str):  # noqa: A002 - the GraphQL argument name
    shop: Shop = info.context["shop"]
    for operation in shop.bulk_operations:
        if operation["id"] == id:
            return _bulk_node(info.context["world"], shop, operation)
    return None


def _resolve_bulk_run(root, info, query: str):
    """Run the inner query over the whole catalog in the background; one JSONL line per
    node of its top-level connection, like Shopify's bulk export."""
    world: World = info.context["world"]
    shop: Shop = info.context["shop"]
    running = shop.bulk_operations and shop.bulk_operations[-1]["status"] == "RUNNING"
    if running:
        message = "A bulk query operation for this app and shop is already in progress"
        return {"bulkOperation": None, "userErrors": [{"field": ["query"], "message": message}]}
    try:
        document = parse(query)
    except GraphQLError as error:
        return {
            "bulkOperation": None,
            "userErrors": [{"field": ["query"], "message": error.message}],
        }
    problems = validate(SCHEMA, document)
    if problems:
        return {
            "bulkOperation": None,
            "userErrors": [{"field": ["query"], "message": problems[0].message}],
        }
    key = f"{len(shop.bulk_operations) + 1}-{abs(hash(query)) % 10**8}"
    operation = {
        "id": f"gid://shopify/BulkOperation/{world.new_id()}",
        "key": key,
        "status": "RUNNING",
        "objectCount": 0,
        "createdAt": _now(),
    }
    shop.bulk_operations.append(operation)

    def run() -> None:
        shop.bulk_gate.wait()
        result = graphql_sync(
            SCHEMA, query, context_value={"world": world, "shop": shop, "bulk": True}
        )
        lines = []
        for connection in (result.data or {}).values():
            for edge in (connection or {}).get("edges", []):
                lines.append(json.dumps(edge["node"]))
        shop.bulk_results[key] = ("\n".join(lines) + "\n").encode() if lines else b""
        operation.update(status="COMPLETED", objectCount=len(lines), completedAt=_now())

    threading.Thread(target=run, daemon=True).start()
    return {"bulkOperation": _bulk_node(world, shop, operation), "userErrors": []}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _resolve_themes(root, info, first=None, roles=None):
    """The live theme. Its config/settings_data.json lists app embeds and its
    templates/product.json the app blocks in each section, as Shopify writes them (type
    shopify://apps/<app>/blocks/<block>/<extension uuid>, "disabled"); ``files`` answers
    only the filenames asked for."""
    world: World = info.context["world"]
    shop: Shop = info.context["shop"]
    app_blocks = "shopify://apps/interlayer/blocks/{}/0b7c1e4e-interlayer-widget"
    settings_data = {
        "current": {
            "blocks": {
                "1740000000000000000": {
                    "type": app_blocks.format("app-embed"),
                    "disabled": not world.theme_embed_enabled.get(shop.handle, True),
                    "settings": world.theme_embed_settings.get(shop.handle, {}),
                }
            }
        }
    }
    main_blocks = {
        "title": {"type": "title", "settings": {}},
        "price": {"type": "price", "settings": {}},
        "buy_buttons": {"type": "buy_buttons", "settings": {}},
    }
    if world.theme_app_block_added.get(shop.handle, True):
        main_blocks["17400000009c7e1a2b"] = {
            "type": app_blocks.format("recommendations"),
            "settings": {"reserved_height": 330},
        }
    product_template = {
        "sections": {
            "main": {"type": "main-product", "blocks": main_blocks,
                     "block_order": list(main_blocks), "settings": {}},
            "related-products": {"type": "related-products", "settings": {}},
        },
        "order": ["main", "related-products"],
    }  # fmt: skip
    header = "/*\n * IMPORTANT: The contents of this file are auto-generated.\n */\n"
    contents = {
        "config/settings_data.json": header + json.dumps(settings_data),
        "templates/product.json": header + json.dumps(product_template),
    }

    def files(_info, filenames=None, first=None):
        wanted = filenames if filenames is not None else list(contents)
        return {"nodes": [
            {"filename": name,
             "body": {"__typename": "OnlineStoreThemeFileBodyText", "content": contents[name]}}
            for name in wanted if name in contents
        ]}  # fmt: skip

    theme = {"id": "gid://shopify/OnlineStoreTheme/1", "name": "Dawn", "role": "MAIN",
             "files": files}  # fmt: skip
    return {"nodes": [theme]}


def _require_scope(shop: Shop, scope: str) -> None:
    granted = set(shop.granted_scopes)
    if scope not in granted and not (
        scope.startswith("read_") and f"write_{scope.removeprefix('read_')}" in granted
    ):
        raise GraphQLError(f"Access denied for this field. Required access: `{scope}`.")


def _resolve_web_pixel(root, info, id=None):  # noqa: A002 - the GraphQL argument name
    """The app's pixel on the shop; like Shopify, an error (not null) when there is none."""
    shop: Shop = info.context["shop"]
    _require_scope(shop, "read_pixels")
    if shop.web_pixel is None or (id is not None and id != shop.web_pixel["id"]):
        raise GraphQLError("No web pixel was found for this app.")
    return dict(shop.web_pixel)


def _pixel_input_problem(settings) -> list[dict[str, Any]]:
    from simulator.pixels import settings_problem  # noqa: PLC0415 -- pixels imports state

    problem = settings_problem(settings)
    if problem is None:
        return []
    return [{"code": "INVALID_SETTINGS", "field": ["webPixel", "settings"], "message": problem}]


def _resolve_web_pixel_create(root, info, webPixel):
    world: World = info.context["world"]
    shop: Shop = info.context["shop"]
    _require_scope(shop, "write_pixels")
    if shop.web_pixel is not None:
        taken = {"code": "TAKEN", "field": ["webPixel"], "message": "Web pixel is taken."}
        return {"webPixel": None, "userErrors": [taken]}
    errors = _pixel_input_problem(webPixel["settings"])
    if errors:
        return {"webPixel": None, "userErrors": errors}
    settings = webPixel["settings"]
    with world.lock:
        shop.web_pixel = {
            "id": f"gid://shopify/WebPixel/{world.new_id()}",
            "settings": settings if isinstance(settings, str) else json.dumps(settings),
        }
    return {"webPixel": dict(shop.web_pixel), "userErrors": []}


def _resolve_web_pixel_update(root, info, id, webPixel):  # noqa: A002 - GraphQL names
    world: World = info.context["world"]
    shop: Shop = info.context["shop"]
    _require_scope(shop, "write_pixels")
    if shop.web_pixel is None or shop.web_pixel["id"] != id:
        missing = {"code": "NOT_FOUND", "field": ["id"], "message": "Web pixel not found."}
        return {"webPixel": None, "userErrors": [missing]}
    errors = _pixel_input_problem(webPixel["settings"])
    if errors:
        return {"webPixel": None, "userErrors": errors}
    settings = webPixel["settings"]
    with world.lock:
        shop.web_pixel["settings"] = settings if isinstance(settings, str) else json.dumps(settings)
    return {"webPixel": dict(shop.web_pixel), "userErrors": []}


SCHEMA.query_type.fields["webPixel"].resolve = _resolve_web_pixel
SCHEMA.mutation_type.fields["webPixelCreate"].resolve = _resolve_web_pixel_create
SCHEMA.mutation_type.fields["webPixelUpdate"].resolve = _resolve_web_pixel_update
SCHEMA.query_type.fields["themes"].resolve = _resolve_themes
SCHEMA.query_type.fields["productsCount"].resolve = _resolve_count
SCHEMA.query_type.fields["currentBulkOperation"].resolve = _resolve_current_bulk
SCHEMA.query_type.fields["bulkOperation"].resolve = _resolve_bulk
SCHEMA.mutation_type.fields["bulkOperationRunQuery"].resolve = _resolve_bulk_run
SCHEMA.query_type.fields["products"].resolve = _resolve_products
SCHEMA.query_type.fields["product"].resolve = _resolve_product
SCHEMA.query_type.fields["order"].resolve = _resolve_order
SCHEMA.query_type.fields["shop"].resolve = _resolve_shop
SCHEMA.query_type.fields["currentAppInstallation"].resolve = _resolve_installation
SCHEMA.mutation_type.fields["metafieldsSet"].resolve = _resolve_metafields_set


def _selection_cost(selection_set, parent: GraphQLObjectType, variables: dict[str, Any]) -> int:
    total = 0
    for selection in selection_set.selections if selection_set else []:
        if isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            target = SCHEMA.get_type(condition.name.value) if condition else parent
            total += _selection_cost(selection.selection_set, target, variables)
            continue
        if not isinstance(selection, FieldNode) or selection.name.value.startswith("__"):
            continue
        field = getattr(parent, "fields", {}).get(selection.name.value)
        if field is None:
            continue
        named = get_named_type(field.type)
        if is_leaf_type(named):
            continue
        child = _selection_cost(selection.selection_set, named, variables)
        first = _argument(selection, "first", variables)
        if first is not None:
            total += 2 + int(first) * max(child, 1)
        else:
            total += 1 + child
    return total


def _argument(node: FieldNode, name: str, variables: dict[str, Any]) -> Any:
    for argument in node.arguments or []:
        if argument.name.value == name:
            value = argument.value
            if value.kind == "variable":
                return variables.get(value.name.value)
            return getattr(value, "value", None)
    return None


def query_cost(document, variables: dict[str, Any]) -> int:
    cost = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            if definition.operation.value == "mutation":
                cost += MUTATION_COST
            else:
                cost += _selection_cost(definition.selection_set, SCHEMA.query_type, variables)
    return cost


def execute(world: World, shop: Shop, body: dict[str, Any]) -> dict[str, Any]:
    """Run one request body; returns the JSON response (always HTTP 200, like Shopify)."""
    query = body.get("query")
    variables = body.get("variables") or {}
    if not isinstance(query, str) or not isinstance(variables, dict):
        return {"errors": [{"message": "Parameter Missing or Invalid"}]}
    try:
        document = parse(query)
    except GraphQLError as error:
        return {"errors": [{"message": error.message}]}
    problems = validate(SCHEMA, document)
    if problems:
        return {"errors": [{"message": problem.message} for problem in problems]}
    cost = query_cost(document, variables)
    if cost > world.bucket_size:
        return {
            "errors": [
                {
                    "message": f"Query cost is {cost}, which exceeds the single query max cost "
                    f"limit ({int(world.bucket_size)}).",
                    "extensions": {"code": "MAX_COST_EXCEEDED", "cost": cost},
                }
            ]
        }
    allowed, throttle = world.take_points(shop, cost)
    if not allowed:
        return throttled_response(cost, throttle)
    result = graphql_sync(
        SCHEMA, query, variable_values=variables, context_value={"world": world, "shop": shop}
    )
    response: dict[str, Any] = {"data": result.data}
    if result.errors:
        response["errors"] = [{"message": error.message} for error in result.errors]
    response["extensions"] = {
        "cost": {
            "requestedQueryCost": cost,
            "actualQueryCost": cost,
            "throttleStatus": throttle,
        }
    }
    return response


def throttled_response(cost: int, throttle: dict[str, float]) -> dict[str, Any]:
    return {
        "errors": [
            {
                "message": "Throttled",
                "extensions": {
                    "code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits",
                },
            }
        ],
        "extensions": {
            "cost": {
                "requestedQueryCost": cost,
                "actualQueryCost": None,
                "throttleStatus": throttle,
            }
        },
    }
