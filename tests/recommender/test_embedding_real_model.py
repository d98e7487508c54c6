"""The real all-MiniLM-L6-v2, offline: the fast ONNX path against the sentence-transformers
reference, and real similarity between real product texts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from recommender.ranking import embedding
from tests.demo_texts import demo_product_texts

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def onnx_embedder():
    return embedding.load_embedder("onnx", str(settings.RECOMMENDER_MODEL_DIR), 2)


@pytest.fixture(scope="module")
def reference():
    return embedding.load_embedder("sentence-transformers", "", 2)


@pytest.mark.parametrize("which", ["onnx_embedder", "reference"])
def test_two_coffee_grinders_are_closer_to_each_other_than_to_a_dress(request, which):
    embedder = request.getfixturevalue(which)
    grinder_a, grinder_b, dress = embedder.encode(
        [
            embedding.product_text(
                title="Hand Burr Grinder",
                product_type="Coffee Grinders",
                description="Stainless conical burrs for pour-over and espresso.",
            ),
            embedding.product_text(
                title="Electric Coffee Mill",
                product_type="Coffee Grinders",
                description="Grinds beans evenly for drip coffee.",
            ),
            embedding.product_text(
                title="Linen Midi Dress",
                product_type="Dresses",
                description="A breathable summer dress in sage green.",
            ),
        ]
    )

    assert grinder_a @ grinder_b > grinder_a @ dress + 0.2
    assert grinder_a @ grinder_b > grinder_b @ dress + 0.2
    assert np.allclose(np.linalg.norm([grinder_a, grinder_b, dress], axis=1), 1.0, atol=1e-3)


def test_onnx_fast_path_matches_the_reference_within_cosine_0_99(onnx_embedder, reference):
    texts = demo_product_texts(per_store=8)

    fast = onnx_embedder.encode(texts)
    ref = reference.encode(texts)

    cosines = (fast * ref).sum(axis=1)
    assert fast.shape == ref.shape == (len(texts), embedding.DIMENSIONS)
    assert cosines.mean() >= 0.99
    assert cosines.min() >= 0.97


def test_onnx_keeps_input_order_with_length_sorted_batches(onnx_embedder):
    texts = ["a much longer product text about a cast iron skillet " * 4, "tea", "dog bed"]

    together = onnx_embedder.encode(texts)
    alone = np.vstack([onnx_embedder.encode([text]) for text in texts])

    # Dynamic int8 quantisation scales activations per batch, so a vector moves a little
    # with its batch-mates; each must still be its own text's vector, not a neighbour's.
    similarity = together @ alone.T
    assert list(similarity.argmax(axis=1)) == [0, 1, 2]
    assert np.diag(similarity).min() > 0.98


def test_web_process_and_fast_embedder_never_import_torch():
    code = (
        "import os, sys, django;"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'interlayer.settings');"
        "django.setup();"
        "import interlayer.urls, interlayer.wsgi, recommender.catalog.sync;"
        "from django.test import Client; Client().get('/');"
        "from recommender.catalog import embedding_pass;"
        "embedding_pass.get_embedder().encode(['kettle']);"
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    env = {**os.environ, "RECOMMENDER_EMBEDDER": "onnx"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"


def test_a_process_without_the_model_file_refuses_to_build_it_and_says_how(tmp_path):
    code = (
        "import os, sys, django;"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'interlayer.settings');"
        "django.setup();"
        "from recommender.catalog import embedding_pass;"
        "from recommender.ranking.embedding import ModelMissing\n"
        "try:\n    embedding_pass.get_embedder()\n"
        "except ModelMissing as error:\n    print(error)\n"
        "print('torch' in sys.modules)"
    )
    env = {**os.environ, "RECOMMENDER_EMBEDDER": "onnx", "RECOMMENDER_MODEL_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    message, torch_loaded = result.stdout.strip().splitlines()
    assert f"python -m recommender.ranking.embedding {tmp_path}" in message
    assert torch_loaded == "False"
    assert not list(tmp_path.iterdir())  # nothing was built


def test_batches_run_side_by_side_come_back_in_input_order(onnx_embedder):
    """Each thread's session runs whole batches of its own; every text still gets its own
    vector, whatever the batch sizes and however the batches were shared out."""
    texts = demo_product_texts()[:37]  # two full batches of 16 and a short one
    alone = embedding.OnnxEmbedder(
        Path(settings.RECOMMENDER_MODEL_DIR) / embedding.ONNX_FILENAME, threads=1
    )

    together = onnx_embedder.encode(texts)

    assert np.allclose(together, alone.encode(texts), atol=1e-5)
    # And each is the text's own vector, not a neighbour's (int8 activations are scaled per
    # batch, so a text alone comes out close to, not exactly as, within a batch).
    for i in (0, 17, 36):
        own = alone.encode([texts[i]])[0]
        assert together[i] @ own > 0.99
        assert together[i] @ own > max(together[j] @ own for j in range(len(texts)) if j != i)
