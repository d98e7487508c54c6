"""Relevance through the product, on the WDC development set (../shared/datasets/wdc-shops).

The eight shops are served by the simulator and go through the product's real path:
install (token exchange) → catalog sync over the Admin API → embedding → index build →
``recommendations_for`` (what ``recommend --raw --json`` prints). For every product that
known pairs link to a product of another shop, it prints per direction (the "a" shops'
products as queries, then the "b" shops'):

- recall@1 and @10 through the product, with competitor avoidance off (raw: hard filters
  only; a hit is any offer the known pairs connect to the query, as the set's README
  counts it; the gain is also given for a hit by a pair of the query's own);
- the same recalls for three baselines computed outside the product in the same run, on
  the same stored vectors and texts: exact dense search, character 3-5-gram TF-IDF, and a
  50/50 blend of the two;
- what recall@1 cannot judge (queries whose title an unlinked offer repeats), and whether
  weights fitted to the set's pairs, cross-validated by niche, would rank better than the
  product's own;
- with competitor avoidance on (the merchant default): the same-item leak rate (an offer
  the known pairs connect to the page shown in the widget), widget items below the relevance floor, invariant violations
  (the host in partner slots, a blocked store shown), and how full the widgets are.

    DATABASE_URL=postgres://.../empty_db .venv/bin/python bench/relevance.py
(without DATABASE_URL a temporary SQLite database is used)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("INTERLAYER_ENV", "development")

from bench.local_servers import cpu_model, free_port, install_app, wait_for  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "wdc-shops"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--network",
        choices=["wdc", "demo"],
        default="wdc",
        help="wdc: recall on the development set; demo: how full the demo network's widgets are",
    )
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the stores a previous run synced into this database: rebuild the index and "
        "measure again (for trying ranking changes; the first run syncs everything)",
    )
    parser.add_argument(
        "--show",
        metavar="TYPE",
        action="append",
        default=[],
        help="demo: print the widget of every product page of this product type (e.g. Books; "
        "repeat for more) in place of the random sample",
    )
    args = parser.parse_args()
    wdc = args.network == "wdc"
    if wdc and not (args.dataset / "gold-pairs.json").exists():
        raise SystemExit(f"no development set at {args.dataset}")
    workdir = Path(tempfile.mkdtemp(prefix="interlayer-relevance-"))
    port = free_port()
    shops = ["--shops", str(args.dataset / "shops")] if wdc else []
    simulator = subprocess.Popen(
        [sys.executable, "-m", "simulator", "serve", "--port", str(port), *shops],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        stores = set_up(workdir, f"http://127.0.0.1:{port}", reuse=args.reuse)
        if wdc:
            measure_recall(args.dataset, stores)
        else:
            measure_fill(stores, show=args.show)
    finally:
        simulator.terminate()
        simulator.wait()


def set_up(workdir: Path, simulator_url: str, *, reuse: bool) -> dict:
    """Every shop the simulator serves, installed, synced, embedded and indexed (or, with
    ``reuse``, those of a previous run re-indexed)."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="interlayer.settings",
        SHOPIFY_SIMULATOR_URL=simulator_url,
        HF_HUB_OFFLINE="1",
        RECOMMENDER_EMBEDDER="onnx",
        RECOMMENDER_INDEX_DIR=str(workdir / "index"),
        RECOMMENDER_INDEX_POLL_SECONDS="0",
        LOG_LEVEL="WARNING",
    )
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    wait_for(simulator_url + "/_sim/state")

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import httpx

    from recommender.catalog import embedding_pass
    from recommender.catalog import sync as catalog_sync
    from recommender.catalog.index_events import rebuild_index
    from recommender.models import Product
    from stores import services
    from stores.models import Store

    handles = sorted(httpx.get(simulator_url + "/_sim/state").json()["shops"])
    started = time.perf_counter()
    if reuse:
        handles = [s.shop_domain.split(".")[0] for s in Store.objects.all()]
        if not handles:
            raise SystemExit("--reuse: this database does not hold a previous run's stores")
    else:
        call_command("flush", "--noinput", verbosity=0)
    # Installed (again, with --reuse: the new simulator issued no tokens yet) through the
    # real token exchange, then what the worker does after an install: shop details, the
    # welcome (widget settings, starter credits) and a sync request.
    stores = {handle: install_app(simulator_url, handle) for handle in handles}
    served = httpx.get(simulator_url + "/_sim/state").json()["shops"]
    for handle, store in stores.items():
        services.after_install(store)
        # A reused store is synced again only if a previous run stopped part-way.
        if not reuse or Product.objects.filter(store=store).count() < served[handle]["products"]:
            catalog_sync.sync_catalog(store)
        embedding_pass.embed_store(store)  # what is left to embed (none after a full sync)
    rebuild_index()
    steps = "index" if reuse else "install → sync → embed → index"
    print(f"CPU: {cpu_model()}")
    print(
        f"network: {len(stores)} stores, {Product.objects.exclude(vector=None).count()} products "
        f"embedded and indexed; {steps} took {time.perf_counter() - started:.0f}s"
    )
    return stores


def measure_recall(dataset: Path, stores: dict) -> None:
    from recommender.models import Product

    rows = list(
        Product.objects.filter(store__in=stores.values(), vector__isnull=False).values_list(
            "pk", "store__shop_domain", "shopify_id", "title", "vendor", "product_type", "vector"
        )
    )
    key_of = {pk: (domain.split(".")[0], sid) for pk, domain, sid, *_ in rows}
    row_of = {key: i for i, key in enumerate(key_of.values())}
    links: dict[tuple, set] = {}
    for shop_a, id_a, shop_b, id_b in json.loads((dataset / "gold-pairs.json").read_text()):
        a, b = (shop_a, int(id_a)), (shop_b, int(id_b))
        if a in row_of and b in row_of:
            links.setdefault(a, set()).add(b)
            links.setdefault(b, set()).add(a)

    pairs = links
    links = connected(pairs)
    print(f"{len(links)} products have a known same product in another shop; "
          f"{sum(links[q] != pairs[q] for q in links)} of them one more through other pairs")  # fmt: skip
    baselines = baseline_rankings(rows, row_of)
    print("\nrecall@1 / recall@10, competitor avoidance off (raw), queries in the a / b shops")
    print(f"{'method':34s} {'a → others':>14s} {'b → others':>14s}")
    product_rankings = product_ranking(stores, links)
    methods = [*baselines.items(), ("Interlayer (through the product)", None)]
    rankings = {
        name: {q: product_rankings[q] if ranking is None else ranking(q) for q in links}
        for name, ranking in methods
    }
    for hits, title in [(links, "connected by known pairs (the set's definition)"),
                        (pairs, "only a pair of its own (as measured before)")]:  # fmt: skip
        figures = {
            name: [recalls({q: ranked[q] for q in ranked if q[0].endswith(side)}, hits)
                   for side in ("-a", "-b")]
            for name, ranked in rankings.items()
        }  # fmt: skip
        if hits is links:
            for name, figure in figures.items():
                print(f"{name:34s}", *(f"{r1:.3f} / {r10:.3f}" for r1, r10 in figure))
        best = {
            side: tuple(max(figures[name][side][k] for name in baselines) for k in (0, 1))
            for side in (0, 1)
        }
        ours = figures["Interlayer (through the product)"]
        print(f"gain over the best baseline (R@1, R@10), a hit {title}:",
              *(f"{ours[s][0] - best[s][0]:+.3f}, {ours[s][1] - best[s][1]:+.3f}" for s in (0, 1)))  # fmt: skip
    title_of = {key_of[pk]: title for pk, _, _, title, *_ in rows}
    repeated = repeated_titles(links, title_of)
    unjudged(links, title_of, repeated, product_rankings, baselines)
    fitted_weights(stores, links, title_of, repeated)
    widget_checks(stores, links)


def connected(pairs: dict[tuple, set]) -> dict[tuple, set]:
    """Each product's known same products in other shops, the pairs followed through: when
    a shop lists one product twice, a1 = b1 and a2 = b1 make a2's other pairs a1's too. The
    set's README counts a hit as "any offer connected to the query by known pairs"."""
    same: dict[tuple, set] = {}
    for start in pairs:
        if start in same:
            continue
        group, stack = set(), [start]
        while stack:
            offer = stack.pop()
            if offer not in group:
                group.add(offer)
                stack.extend(pairs[offer])
        for offer in group:
            same[offer] = {other for other in group if other[0] != offer[0]}
    return same


def _same_title(a: str, b: str) -> bool:
    return _words(a) == _words(b)


def _words(title: str) -> str:
    return " ".join(re.findall(r"[^\W_]+", title.lower()))


def repeated_titles(links, title_of) -> set:
    """The queries whose title another shop's offer repeats word for word (case and
    punctuation aside), without the known pairs linking the two."""
    by_title: dict[str, set] = {}
    for key, title in title_of.items():
        by_title.setdefault(_words(title), set()).add(key)
    return {
        q for q in links
        if any(other[0] != q[0] and other not in links[q] for other in by_title[_words(title_of[q])])
    }  # fmt: skip


def unjudged(links, title_of, repeated, product_rankings, baselines) -> None:
    """What recall@1 cannot judge: a query whose title an unlinked offer of another shop
    repeats (``repeated``). Printed: how many of the product's misses at 1 put such an
    offer first, and recall@1 through the product and for the best baseline on those
    queries and on the rest (the same queries for every method)."""
    print("\nqueries whose title an unlinked offer of another shop repeats word for word")
    for side in ("-a", "-b"):
        queries = [q for q in links if q[0].endswith(side)]
        misses = [q for q in queries if not product_rankings[q] or product_rankings[q][0] not in links[q]]  # fmt: skip
        first_repeats = sum(
            bool(product_rankings[q]) and _same_title(title_of[product_rankings[q][0]], title_of[q])
            for q in misses
        )  # fmt: skip
        figures = []
        for subset in (
            [q for q in queries if q in repeated],
            [q for q in queries if q not in repeated],
        ):
            if not subset:
                figures.append("no queries")
                continue
            ours = recalls({q: product_rankings[q] for q in subset}, links)[0]
            best = max(
                recalls({q: rank(q) for q in subset}, links)[0] for rank in baselines.values()
            )
            figures.append(f"{len(subset)} queries, recall@1 {ours:.3f} against the best "
                           f"baseline's {best:.3f} ({ours - best:+.3f})")  # fmt: skip
        print(f"  {side[1]} → others: {first_repeats} of the product's {len(misses)} misses at 1 "
              f"put such an offer first; repeated: {figures[0]}; the rest: {figures[1]}")  # fmt: skip


# Candidates the raw ranking of 10 items weighs per query (recommendations.RAW_POOL x 10).
FITTED_POOL = 20


def fitted_weights(stores, links, title_of, repeated) -> None:
    """Whether other weights of the same signals would find the same product first more
    often. Each query's candidates as the product's search returns them (FITTED_POOL) are
    ranked by a logistic regression fitted to the known pairs on three niches' queries and
    scored on the fourth's (each niche in turn), against the product's own weights on the
    same candidates. First on the signals the raw ranking reads (cosine, lexical score,
    identifier agreement), then with one more: the share of words the two titles have in
    common (Jaccard). Printed: recall@1's change from the product's weights, per direction,
    on all queries, on the repeated ones and on the rest, with the fitted weights."""
    from sklearn.linear_model import LogisticRegression

    from recommender.models import Product
    from recommender.ranking import live_index
    from recommender.ranking.index import LEXICAL_WEIGHT
    from recommender.ranking.lexical import identifier_agreement
    from recommender.ranking.network import network_state
    from recommender.ranking.recommendations import IDENTIFIER_WEIGHT

    index, state = live_index.current(), network_state()
    key_of = {
        pk: (domain.split(".")[0], sid)
        for pk, domain, sid in Product.objects.values_list("pk", "store__shop_domain", "shopify_id")
    }  # fmt: skip
    features, labels = {}, {}
    for shop, product_id in links:
        host, query = stores[shop], (shop, product_id)
        viewed = Product.objects.get(store=host, shopify_id=product_id)
        text = live_index.lexical_text_of(*(getattr(viewed, f) for f in live_index.LEXICAL_FIELDS))
        hits = index.search(
            np.frombuffer(viewed.vector, dtype=np.float32), FITTED_POOL, text=text,
            exclude_stores=index.store_ids() - state.partners_of(host.pk), text_store=host.pk,
        )  # fmt: skip
        ours = set(_words(viewed.title).split())
        rows = []
        for hit in hits:
            title = title_of[key_of[hit.product_id]]
            theirs = set(_words(title).split())
            overlap = len(ours & theirs) / max(len(ours | theirs), 1)
            rows.append(
                [hit.cosine, hit.lexical, identifier_agreement(viewed.title, title), overlap]
            )
        features[query] = np.array(rows).reshape(-1, 4)
        labels[query] = [key_of[hit.product_id] in links[query] for hit in hits]
    product = np.array([1.0, LEXICAL_WEIGHT, IDENTIFIER_WEIGHT, 0.0])

    def at1(queries, score, signals=4) -> float:
        firsts = [
            labels[q][int(np.argmax(score(features[q][:, :signals])))] for q in queries if labels[q]
        ]
        return sum(firsts) / len(queries) if queries else 0.0

    niche = {q: q[0].rsplit("-", 1)[0] for q in links}
    ours = [
        at1([q for q in links if q[0].endswith(side)], lambda f: f @ product)
        for side in ("-a", "-b")
    ]
    print("\nweights fitted to this set, cross-validated by niche: recall@1 against the "
          f"product's weights on the same candidates ({ours[0]:.3f} / {ours[1]:.3f}), "
          "a / b queries: all; repeated titles; the rest")  # fmt: skip
    for signals, name in [(3, "cosine, lexical, identifiers"), (4, "the same and word overlap")]:
        changes: dict[str, list] = {}
        weights = []
        for held in sorted(set(niche.values())):
            train = [q for q in links if niche[q] != held and labels[q]]
            model = LogisticRegression(max_iter=2000).fit(
                np.vstack([features[q][:, :signals] for q in train]),
                [label for q in train for label in labels[q]],
            )
            weights.append(model.coef_[0])
            for side in ("-a", "-b"):
                for part, keep in (("all", None), ("repeated", True), ("rest", False)):
                    queries = [q for q in links if niche[q] == held and q[0].endswith(side)
                               and (keep is None or (q in repeated) == keep)]  # fmt: skip
                    fitted = at1(queries, model.decision_function, signals)
                    change = (fitted - at1(queries, lambda f: f @ product)) * len(queries)
                    changes.setdefault((side, part), []).append((change, len(queries)))
        shown = {
            key: sum(c for c, _ in parts) / sum(n for _, n in parts) for key, parts in changes.items()
        }  # fmt: skip
        print(f"  {name}: weights {np.round(np.mean(weights, axis=0), 1).tolist()};",
              *(f"{side[1]} {shown[side, 'all']:+.3f}; {shown[side, 'repeated']:+.3f}; "
                f"{shown[side, 'rest']:+.3f}" for side in ("-a", "-b")))  # fmt: skip


def baseline_rankings(rows, row_of):
    """Exact dense search on the stored vectors, char 3-5-gram TF-IDF and a 50/50 blend,
    each query searching every other shop."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from recommender.catalog.products import embedding_text

    keys = list(row_of)
    shops = np.array([key[0] for key in keys])
    vectors = np.vstack([np.frombuffer(row[-1], dtype=np.float32) for row in rows])
    texts = [
        embedding_text({"title": title, "vendor": vendor, "product_type": kind, "tags": [],
                        "category_full_name": "", "description": title})
        for _, _, _, title, vendor, kind, _ in rows
    ]  # fmt: skip
    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
    matrix = tfidf.fit_transform(texts)

    def ranker(score):
        def ranked(query):
            i = row_of[query]
            scores = score(i)
            scores[shops == query[0]] = -np.inf
            top = np.argpartition(-scores, 10)[:10]
            return [keys[j] for j in top[np.argsort(-scores[top], kind="stable")]]

        return ranked

    def dense(i):
        return vectors @ vectors[i]

    def lexical(i):
        return (matrix @ matrix[i].T).toarray().ravel()

    return {
        "dense MiniLM int8, exact": ranker(dense),
        "char 3-5-gram TF-IDF": ranker(lexical),
        "0.5 dense + 0.5 TF-IDF": ranker(lambda i: 0.5 * dense(i) + 0.5 * lexical(i)),
    }


def product_ranking(stores, links):
    from recommender.ranking.recommendations import recommendations_for

    ranked = {}
    for shop, product_id in links:
        items = recommendations_for(stores[shop], product_id=product_id, limit=10, raw=True)
        ranked[(shop, product_id)] = [
            (item.product.store.shop_domain.split(".")[0], item.product.shopify_id)
            for item in items
        ]
    return ranked


def recalls(ranked, links) -> tuple[float, float]:
    at1 = sum(1 for q, items in ranked.items() if items and items[0] in links[q])
    at10 = sum(1 for q, items in ranked.items() if links[q] & set(items[:10]))
    return at1 / len(ranked), at10 / len(ranked)


def cosine_floor(page_category: str, item) -> float:
    """The cosine a widget item needs: RECOMMENDER_RELEVANCE_FLOOR, or more for the host's
    own products and for a book or an item beside one."""
    from django.conf import settings

    from recommender.ranking.recommendations import OWN_MIN_COSINE
    from recommender.ranking.relevance import TOPIC_MIN_COSINE, category_key, is_topical

    floor = settings.RECOMMENDER_RELEVANCE_FLOOR
    if item.slot == "own":
        return max(floor, OWN_MIN_COSINE)
    if any(is_topical(category_key(c)) for c in (page_category, item.product.category_id)):
        return max(floor, TOPIC_MIN_COSINE)
    return floor


def widget_checks(stores, links) -> None:
    """The widget as merchants run it (competitor avoidance on), for every linked product."""
    from django.conf import settings

    from recommender.models import Product, WidgetSettings
    from recommender.ranking.recommendations import recommendations_for

    # One block, to check it holds both ways: the first shop blocks the last.
    first, last = stores[min(stores)], stores[max(stores)]
    pair = {first.pk: last.pk, last.pk: first.pk}
    floor = settings.RECOMMENDER_RELEVANCE_FLOOR
    categories = {
        (domain.split(".")[0], product_id): category
        for domain, product_id, category in Product.objects.filter(
            store__in=stores.values()
        ).values_list("store__shop_domain", "shopify_id", "category_id")
    }
    leaks = below_floor = host_shown = blocked_shown = 0
    fill = Counter()
    with _blocking(first, [last]):
        for shop, product_id in links:
            host = stores[shop]
            widget = WidgetSettings.objects.get(store=host)
            items = recommendations_for(host, product_id=product_id, widget=widget)
            partners = [item for item in items if item.slot == "partner"]
            slots = widget.items - widget.own_slots()
            fill[len(partners) if len(partners) < slots else "all"] += 1
            keys = {
                (i.product.store.shop_domain.split(".")[0], i.product.shopify_id) for i in partners
            }
            leaks += bool(keys & links[(shop, product_id)])
            page_category = categories[(shop, product_id)]
            below_floor += sum(1 for i in items if i.similarity < cosine_floor(page_category, i))
            host_shown += sum(1 for item in partners if item.product.store_id == host.pk)
            blocked_shown += host.pk in pair and any(
                i.product.store_id == pair[host.pk] for i in partners
            )
    pages = len(links)
    print("\nthe widget with competitor avoidance on (the default), on the same pages")
    print(f"same-item leak rate: {leaks / pages:.3%} ({leaks} of {pages} pages)")
    print(f"items below the cosine floor ({floor}, 0.2 for books, beside them and for own "
          f"products): {below_floor}")  # fmt: skip
    print(f"invariant violations: host in partner slots {host_shown}, blocked store shown "
          f"{blocked_shown}")  # fmt: skip
    order = [*sorted((k for k in fill if k != "all"), key=int), "all"]
    print("partner slots filled:", ", ".join(f"{k}: {fill[k] / pages:.0%}" for k in order))


def measure_fill(stores: dict, *, show: list[str]) -> None:
    """Every product page of every store, the widget as merchants run it by default (no
    blocks, as on the demo network); then one block, to check it holds both ways. Prints
    the widgets of a random sample of pages, or of every page of the product types in
    ``show``."""
    import random

    from django.conf import settings

    from recommender.models import Product, WidgetSettings
    from recommender.ranking.recommendations import OWN_MIN_COSINE, recommendations_for
    from recommender.ranking.relevance import TOPIC_MIN_COSINE

    floor, minimum = settings.RECOMMENDER_RELEVANCE_FLOOR, settings.RECOMMENDER_MIN_RELEVANCE
    pages = list(Product.objects.filter(eligible=True).exclude(vector=None).select_related("store"))
    widgets = {store.pk: WidgetSettings.objects.get(store=store) for store in stores.values()}

    def partners_on(page_list) -> dict:
        """page -> (the partner items its widget shows, its partner slots, all its items)"""
        shown = {}
        for page in page_list:
            widget = widgets[page.store_id]
            items = recommendations_for(page.store, product_id=page.shopify_id, widget=widget)
            slots = widget.items - widget.own_slots()
            shown[page] = ([item for item in items if item.slot == "partner"], slots, items)
        return shown

    # Then one block, to check it holds both ways: the first shop blocks the last (only
    # their pages can change).
    first, last = stores[min(stores)], stores[max(stores)]
    pair = {first.pk: last.pk, last.pk: first.pk}
    with ExitStack() as unblocked:
        for store in stores.values():
            unblocked.enter_context(_blocking(store, []))
        shown = partners_on(pages)
        with _blocking(first, [last]):
            blocked = partners_on([page for page in pages if page.store_id in pair])
    fill: Counter = Counter()
    full_by_store: Counter = Counter()
    empty_by_store: Counter = Counter()
    # Pages short of a full widget by store and product type: (pages, partner items shown).
    short: dict[tuple[str, str], list[int]] = {}
    cosines: list[float] = []
    relevances: list[float] = []
    below_floor = host_shown = 0
    for page, (partners, slots, items) in shown.items():
        fill[len(partners) if len(partners) < slots else "all"] += 1
        full_by_store[page.store.name] += len(partners) >= slots
        if len(partners) < slots:
            row = short.setdefault((page.store.name, page.product_type), [0, 0])
            row[0] += 1
            row[1] += len(partners)
        empty_by_store[page.store.name] += not partners
        cosines += [item.similarity for item in partners]
        relevances += [item.relevance for item in partners]
        below_floor += sum(
            1 for item in items if item.similarity < cosine_floor(page.category_id, item)
        )
        below_floor += sum(1 for item in partners if item.relevance < minimum)
        host_shown += sum(1 for item in partners if item.product.store_id == page.store_id)
    order = [*sorted((k for k in fill if k != "all"), key=int), "all"]
    print(f"\nproduct pages: {len(pages)}, partner slots per widget: {slots}, no store blocked")
    print("partner slots filled:", ", ".join(
        f"{k}: {fill[k] / len(pages):.0%} ({fill[k]})" for k in order
    ))  # fmt: skip
    full, empty = fill["all"], fill[0]
    print(
        f"goal (at least 80 % of pages fill every partner slot, at most 5 % show none): "
        f"every slot {full} of {len(pages)} = {full / len(pages):.2%} "
        f"({'met' if full >= 0.8 * len(pages) else 'not met'}), none {empty} = "
        f"{empty / len(pages):.2%} ({'met' if empty <= 0.05 * len(pages) else 'not met'})"
    )
    if relevances:
        print(
            f"median partner item: relevance {float(np.median(relevances)):.3f}, "
            f"cosine {float(np.median(cosines)):.2f}"
        )
    pages_of = Counter(page.store.name for page in pages)
    print("by store (all slots filled / no partner item):", "; ".join(
        f"{name} {full_by_store[name] / n:.0%} / {empty_by_store[name] / n:.0%}"
        for name, n in sorted(pages_of.items())
    ))  # fmt: skip
    print("short of a full widget (pages, partner items per page):", "; ".join(
        f"{name} {kind} {n} ({items / n:.1f})"
        for (name, kind), (n, items) in sorted(short.items(), key=lambda row: (-row[1][0], row[0]))
    ))  # fmt: skip
    print(f"items below the floors (cosine {floor}, {TOPIC_MIN_COSINE} for books and beside "
          f"them, {OWN_MIN_COSINE} for own products; relevance {minimum}): {below_floor}")  # fmt: skip

    before = sum(
        any(item.product.store_id == pair[page.store_id] for item in shown[page][0])
        for page in blocked
    )
    blocked_shown = sum(
        any(item.product.store_id == pair[page.store_id] for item in partners)
        for page, (partners, _, _) in blocked.items()
    )
    host_shown += sum(
        item.product.store_id == page.store_id
        for page, (partners, _, _) in blocked.items()
        for item in partners
    )
    full_blocked = sum(len(partners) >= slots for partners, slots, _ in blocked.values())
    full_before = sum(len(shown[page][0]) >= shown[page][1] for page in blocked)
    print(
        f"with {first.name} blocking {last.name}: pages of either showing the other "
        f"{before} -> {blocked_shown}; their pages with every slot filled "
        f"{full_before} -> {full_blocked} of {len(blocked)}; the whole network "
        f"{(fill['all'] - full_before + full_blocked) / len(pages):.0%}"
    )
    print(f"invariant violations: host in partner slots {host_shown}, blocked store shown "
          f"{blocked_shown}")  # fmt: skip

    if show:
        print(f"\nrendered widgets, every product page of {', '.join(show)}:")
        chosen = [(page, row) for page, row in shown.items() if page.product_type in show]
    else:
        print("\nrendered widgets, a random sample of product pages:")
        chosen = random.Random(4).sample(list(shown.items()), 10)
    for page, (partners, _, _) in chosen:
        print(f"- {page.title} ({page.store.name}):")
        for item in partners:
            print(f"    {item.product.title} — {item.product.store.name} ({item.explanation})")
        if not partners:
            print("    (no partner item)")


@contextmanager
def _blocking(store, blocked: list):
    """``store`` blocks exactly ``blocked`` (the network state refreshed) until the block
    ends; then what it blocked before."""
    from recommender.models import WidgetSettings
    from recommender.ranking.network import network_state

    widget = WidgetSettings.objects.get(store=store)
    before = list(widget.blocked_stores.all())
    widget.blocked_stores.set(blocked)
    network_state(fresh=True)
    try:
        yield
    finally:
        widget.blocked_stores.set(before)
        network_state(fresh=True)


if __name__ == "__main__":
    main()
