"""Lexical relevance: the words and model numbers that embeddings blur.

A sentence embedding places "Alpina AL-372LBO4V6" near every other Alpina watch; the
model number is what tells the same item apart, and a brand or a rare title word is strong
evidence of relatedness. This is a sparse TF-IDF over three blocks of hashed features,
kept beside the vector index with the same labels and updated with it:

- **words** (``WORD_SHARE``): lower-cased title, vendor and type words, and the parts of a
  model number ("TL-SG1016" gives "tl", "sg1016");
- **model numbers** (``MODEL_SHARE``): words with letters and digits, and references of
  five digits or more written with separators ("2541.80.00", "844994-002"), without the
  separators, so "TL-SG1016" meets "TLSG1016" and outweighs a sibling model's shared words;
- **character 3-5-grams** of each word (``GRAM_SHARE``): misspellings, other languages.

Features a store puts on a large share of its own products (its name or its boilerplate in
every title, the one brand it sells: ``STORE_COMMON_SHARE``) say which store a product is
from, not which product it is: they are left out of that store's rows and of queries from
its pages, so two offers no longer match on the words their shops both repeat.

Each block is L2-normalised, so the score of two texts is the weighted sum of the blocks'
cosines, between 0 and 1. Inverse document frequencies are computed at build time
and frozen until the next build; a feature never seen then counts as the rarest. Plain
NumPy/SciPy, no Django.

``identifier_agreement`` compares two titles' identifiers (model and part numbers) as
written, for ranking the candidates a search returned: a hashed feature only matches
whole words, but "SD8SNAT-256G-1122" is the same part inside "LN70221-SD8SNAT-256G-1122".
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import sparse

FEATURES = 1 << 20  # hashed feature space; collisions at this size cost nothing measurable
# Each block's share of the score, measured on the WDC development set (bench/relevance.py):
# words and model numbers carry most of the lexical evidence, n-grams catch the rest.
WORD_SHARE, MODEL_SHARE, GRAM_SHARE = 0.45, 0.3, 0.25
CHAR_GRAMS = (3, 5)
# A query's features shared by this share of the catalog tell little and cost the most to
# score (long postings): they are left out of the query.
COMMON_FEATURE_SHARE = 0.2
# A feature on more than this share of one store's products, and on more than
# STORE_COMMON_MIN of them, says which store, not which product: a shop name in every
# title, its one brand, "Wholesale Price". Measured on the WDC development set (bench/relevance.py),
# leaving them out took recall@10 from 0.816 / 0.846 to 0.840 / 0.868 and recall@1 from
# 0.232 / 0.254 to 0.235 / 0.255. Features on 50 products or fewer are always kept, so a
# catalog of a few dozen products (the demo network's) keeps every word. In a large store
# this also leaves out the name of what it sells ("watch" in a watch shop): it tells none of
# its products apart, and the embedding still relates them.
STORE_COMMON_SHARE = 0.05
STORE_COMMON_MIN = 50

_WORD = re.compile(r"[^\W_]+(?:[-./][^\W_]+)*")
_SEPARATORS = re.compile(r"[-./]")
# Counts are not model numbers: "2-pack" on a candle and on a chew toy says nothing.
_COUNT = re.compile(r"\d+-?(?:pack|pk|pcs?|pieces?|count|ct|set|x)")
# Nor are quantities, sizes, years or short numbers: "250g" on coffee and on tea, "100ct",
# "1080p", "10x10", "2017", "12".
_QUANTITY = re.compile(
    r"\d+(?:g|kg|mg|lbs?|oz|floz|ml|cl|l|mm|cm|m|in|inch|inches|ft|gb|tb|mb|kb|bit|hz|khz|mhz"
    r"|ghz|rpm|w|kw|v|mah|mp|k|p|gsm|ct|count|set|pcs?|pk|pack|pieces?|x)|\d+x\d+"
    r"|(?:19|20)\d\d|\d{1,4}"
)


def lexical_text(*, title: str, vendor: str = "", product_type: str = "") -> str:
    """The one recipe for the text a product is matched on lexically."""
    return " ".join(part.strip() for part in (title, vendor, product_type) if part.strip())


def terms(text: str) -> tuple[list[str], list[str], list[str]]:
    """(words, model numbers, character n-grams) of a text."""
    words: list[str] = []
    models: list[str] = []
    grams: list[str] = []
    for word in _WORD.findall(text.lower()):
        words.append(word)
        digits = sum(ch.isdigit() for ch in word)
        model = digits and (
            any(ch.isalpha() for ch in word) or (digits >= 5 and _SEPARATORS.search(word))
        )
        if model and not _COUNT.fullmatch(word):
            models.append(_SEPARATORS.sub("", word))
            words.extend(part for part in _SEPARATORS.split(word) if len(part) > 1 and part != word)
        padded = f" {word} "
        for n in range(CHAR_GRAMS[0], CHAR_GRAMS[1] + 1):
            grams.extend(padded[i : i + n] for i in range(max(len(padded) - n + 1, 0)))
    return words, models, grams


@functools.lru_cache(maxsize=4096)  # a page's title is compared with every candidate's
def identifiers(text: str) -> frozenset[str]:
    """A text's identifiers: words with a digit, four characters or more without their
    separators, that are not quantities, sizes, years or counts ("TL-SG1016" ->
    "tlsg1016"). Full-width forms are read as their plain letters and digits."""
    found = set()
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        bare = _SEPARATORS.sub("", word)
        if len(bare) >= 4 and any(ch.isdigit() for ch in bare) and not is_quantity(bare):
            found.add(bare)
    return frozenset(found)


def is_quantity(word: str) -> bool:
    """A quantity, size, year, count or short number ("250g", "12-inch", "2017"), which
    names no model however many products carry it."""
    return _QUANTITY.fullmatch(_SEPARATORS.sub("", word.lower())) is not None


def identifier_agreement(query: str, candidate: str) -> float:
    """How far two titles name the same identifiers, 0-1: the share of each one's
    identifiers written somewhere in the other (letters and digits only, so separators,
    spaces and neighbouring words do not hide them), averaged over the two. 0 when either
    names none: no identifiers is no evidence either way."""
    ours, theirs = identifiers(query), identifiers(candidate)
    if not ours or not theirs:
        return 0.0
    our_text, their_text = _bare(query), _bare(candidate)
    found = sum(_written_in(code, their_text) for code in ours) / len(ours)
    returned = sum(_written_in(code, our_text) for code in theirs) / len(theirs)
    return (found + returned) / 2


@functools.lru_cache(maxsize=4096)
def _bare(text: str) -> tuple[str, str]:
    """A text's letters and digits as one run, and word by word (each word without its
    separators, the words apart): a number is looked for in both (_written_in)."""
    words = [
        _SEPARATORS.sub("", word)
        for word in _WORD.findall(unicodedata.normalize("NFKC", text).lower())
    ]
    return "".join(words), " ".join(words)


def _written_in(code: str, text: tuple[str, str]) -> bool:
    """A code inside a text's letters and digits; a number only where no digit adjoins it
    ("12345" is not in "0123456"), in the run ("844994 002" is 844994002) or word by word
    (where the run puts a number against another: "2541.80.00 2541.80.00")."""
    run, words = text
    if not code.isdigit():
        return code in run
    number = re.compile(rf"(?<!\d){code}(?!\d)")
    return number.search(run) is not None or number.search(words) is not None


def _hashed(prefix: str, items: list[str]) -> Counter:
    return Counter(zlib.crc32(f"{prefix}{item}".encode()) & (FEATURES - 1) for item in items)


def _term_counts(text: str) -> tuple[Counter, ...]:
    return tuple(_hashed(prefix, items) for prefix, items in zip("wmc", terms(text), strict=True))


def _weighted_row(
    counts: tuple[Counter, ...], idf: np.ndarray, left_out: frozenset[int] = frozenset()
) -> tuple[list, list]:
    """Feature ids and weights of one text: sublinear tf * idf, each block normalised and
    scaled so the blocks' cosines add up with their shares; ``left_out`` (its store's
    common features) not counted."""
    columns: list[int] = []
    values: list[float] = []
    for block, share in zip(counts, (WORD_SHARE, MODEL_SHARE, GRAM_SHARE), strict=True):
        ids = [f for f in block if f not in left_out] if left_out else list(block)
        if not ids:
            continue
        weights = np.array([(1 + math.log(block[f])) * idf[f] for f in ids], dtype=np.float64)
        norm = float(np.linalg.norm(weights))
        if norm == 0:
            continue
        columns += ids
        values += list(weights / norm * math.sqrt(share))
    return columns, values


class LexicalIndex:
    """Sparse rows aligned with a vector index's labels: built rows in one column-major
    matrix (fast to score a query against), rows added since then in a small tail."""

    def __init__(
        self,
        base: sparse.csc_matrix,
        idf: np.ndarray,
        document_frequency: np.ndarray,
        store_common: dict[int, frozenset[int]] | None = None,
    ):
        self._base = base
        self._idf = idf
        self._df = document_frequency  # of the built rows: which query features are common
        # Each store's boilerplate features, found at the build and frozen until the next,
        # like the idf: rows added since use them, a store new since has none.
        self._store_common = store_common or {}
        self._tail_rows: list[tuple[list, list]] = []
        self._tail: sparse.csc_matrix | None = None  # the tail rows as one matrix, cached

    @classmethod
    def build(cls, texts: Sequence[str], stores: Sequence[int] | None = None) -> LexicalIndex:
        """Rows for ``texts``; with ``stores`` (each text's store) without the features a
        store repeats across its catalog."""
        counts = [_term_counts(text) for text in texts]
        df = np.zeros(FEATURES, dtype=np.int32)
        for blocks in counts:
            for block in blocks:
                df[list(block)] += 1
        idf = (np.log((1 + len(texts)) / (1 + df)) + 1).astype(np.float32)
        common = {} if stores is None else _store_common(counts, stores)
        rows = [
            _weighted_row(c, idf, _left_out(common, store))
            for c, store in zip(counts, _each_store(stores, len(counts)), strict=True)
        ]
        return cls(_matrix(rows).tocsc(), idf, df, common)

    @classmethod
    def empty(cls) -> LexicalIndex:
        return cls.build([])

    def __len__(self) -> int:
        return self._base.shape[0] + len(self._tail_rows)

    def append(self, texts: Sequence[str], stores: Sequence[int] | None = None) -> None:
        """Rows for labels added after the build, in label order (``stores``: each text's
        store, as for ``build``)."""
        self._tail_rows += [
            _weighted_row(_term_counts(text), self._idf, _left_out(self._store_common, store))
            for text, store in zip(texts, _each_store(stores, len(texts)), strict=True)
        ]
        self._tail = None

    def take(self, labels: np.ndarray) -> LexicalIndex:
        """A new index holding these labels' rows, in this order (compaction)."""
        rows = self._all_rows()[labels] if len(labels) else _matrix([])
        return LexicalIndex(rows.tocsc(), self._idf, self._df, self._store_common)

    def query(self, text: str, store: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A query's (features, weights), without the features too common to tell much:
        across the index, or across ``store``'s catalog (the page's own store)."""
        columns, values = _weighted_row(
            _term_counts(text), self._idf, _left_out(self._store_common, store)
        )
        if not columns:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        features = np.asarray(columns, dtype=np.int64)
        weights = np.asarray(values, dtype=np.float32)
        limit = max(COMMON_FEATURE_SHARE * self._base.shape[0], 50)
        rare = self._df[features] <= limit
        return features[rare], weights[rare]

    def scores(self, query: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """The lexical score of every label against a query."""
        features, weights = query
        out = np.zeros(len(self), dtype=np.float32)
        if not len(features):
            return out
        built = self._base.shape[0]
        if built:
            out[:built] = self._base[:, features] @ weights
        if self._tail_rows:
            out[built:] = self._columns_added()[:, features] @ weights
        return out

    def _columns_added(self) -> sparse.csc_matrix:
        """The rows added since the build, column-major like the built ones: selecting a
        query's columns from a row-major matrix walks arrays as long as the whole feature
        space. Made at the first query after an append."""
        if self._tail is None:
            self._tail = _matrix(self._tail_rows).tocsc()
        return self._tail

    def warm_up(self) -> None:
        """What the first query would make (tens of milliseconds with a few hundred rows
        added since the build), made now."""
        if self._tail_rows:
            self._columns_added()

    def save(self, directory: Path) -> None:
        """Column-major arrays in plain .npy files, which ``load`` memory-maps: one copy
        per machine, shared by every process through the page cache."""
        columns = self._all_rows().tocsc()
        # int32 indices where they fit: SciPy would otherwise copy them down on load.
        index_type = np.int32 if columns.nnz < 2**31 else np.int64
        arrays = {
            "data": columns.data.astype(np.float32, copy=False),
            "indices": columns.indices.astype(index_type, copy=False),
            "indptr": columns.indptr.astype(index_type, copy=False),
            "rows": np.array([columns.shape[0]], dtype=np.int64),
            "idf": self._idf,
            "df": self._df,
            # Each store's common features as (store, feature) pairs.
            "common": np.array(
                [
                    (store, f)
                    for store, fs in sorted(self._store_common.items())
                    for f in sorted(fs)
                ],
                dtype=np.int64,
            ).reshape(-1, 2),
        }
        for name, array in arrays.items():
            np.save(directory / f"lexical-{name}.npy", array)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex | None:
        if (directory / "lexical-data.npy").exists():
            mapped = {
                name: np.load(directory / f"lexical-{name}.npy", mmap_mode="r")
                for name in ("data", "indices", "indptr", "rows", "idf", "df")
            }
            base = sparse.csc_matrix(
                (mapped["data"], mapped["indices"], mapped["indptr"]),
                shape=(int(mapped["rows"][0]), FEATURES),
                copy=False,
            )
            return cls(base, mapped["idf"], mapped["df"], _load_common(directory))
        try:  # a version saved before the arrays were mapped
            saved = np.load(directory / "lexical.npz")
        except FileNotFoundError:
            return None  # a version saved before lexical matching: dense only until rebuilt
        rows = sparse.csr_matrix(
            (saved["data"], saved["indices"], saved["indptr"]),
            shape=(int(saved["rows"]), FEATURES),
        )
        return cls(rows.tocsc(), saved["idf"], saved["df"])

    def _all_rows(self) -> sparse.csr_matrix:
        if not self._tail_rows:
            return self._base.tocsr()
        return sparse.vstack([self._base.tocsr(), _matrix(self._tail_rows)], format="csr")


def _store_common(
    counts: list[tuple[Counter, ...]], stores: Sequence[int]
) -> dict[int, frozenset[int]]:
    """Each store's features found on more than STORE_COMMON_SHARE of its texts and on
    more than STORE_COMMON_MIN of them. One store at a time, as arrays: at a million
    products a counter per store would hold tens of millions of entries at once."""
    stores = np.asarray(stores, dtype=np.int64)
    order = np.argsort(stores, kind="stable")
    grouped = stores[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    common = {}
    for start, end in zip(starts, [*starts[1:], len(order)], strict=True):
        size = end - start
        least = max(STORE_COMMON_SHARE * size, STORE_COMMON_MIN)
        if size <= least:
            continue  # too small a catalog for any feature to be on more than the minimum
        # Each text's distinct features, then how many of the store's texts have each.
        features = np.concatenate(
            [np.fromiter(set().union(*counts[i]), dtype=np.int64) for i in order[start:end]]
        )
        ids, texts = np.unique(features, return_counts=True)
        found = frozenset(ids[texts > least].tolist())
        if found:
            common[int(grouped[start])] = found
    return common


def _each_store(stores: Sequence[int] | None, count: int) -> Sequence[int | None]:
    return stores if stores is not None else [None] * count


def _left_out(common: dict[int, frozenset[int]], store: int | None) -> frozenset[int]:
    """The features left out of a text of ``store`` (none when its store is not given)."""
    return common.get(int(store), frozenset()) if store is not None else frozenset()


def _load_common(directory: Path) -> dict[int, frozenset[int]]:
    """The saved (store, feature) pairs; none in a version saved before they were kept."""
    path = directory / "lexical-common.npy"
    if not path.exists():
        return {}
    grouped: dict[int, set[int]] = {}
    for store, feature in np.load(path).tolist():
        grouped.setdefault(store, set()).add(feature)
    return {store: frozenset(features) for store, features in grouped.items()}


def _matrix(rows: list[tuple[list, list]]) -> sparse.csr_matrix:
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    for i, (columns, _) in enumerate(rows):
        indptr[i + 1] = indptr[i] + len(columns)
    indices = np.fromiter(
        (c for columns, _ in rows for c in columns), dtype=np.int32, count=int(indptr[-1])
    )
    data = np.fromiter(
        (v for _, values in rows for v in values), dtype=np.float32, count=int(indptr[-1])
    )
    matrix = sparse.csr_matrix((data, indices, indptr), shape=(len(rows), FEATURES))
    matrix.sum_duplicates()  # two terms hashed to one feature add up
    return matrix
