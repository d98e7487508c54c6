"""The tests' settings: the development profile, said explicitly as the tests must (the
production profile is the default). Subprocesses the tests start inherit it."""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("INTERLAYER_ENV", "development")

from interlayer.settings import *  # noqa: F403

# Tests of the ranking rules assert exact widgets, and learning explores at random: tests of
# learning (tests/recommender/test_learning.py) switch it on themselves.
RECOMMENDER_LEARNING = False

# Most tests run inside one database transaction, which a settling thread cannot see: each
# request settles its own clicks after its response instead. Tests over a live server
# switch the production way back on.
RECOMMENDER_SETTLE_CLICKS_BEHIND = False

# Each test run journals clicks (recommender/exchange/click_journal.py) in a directory of
# its own, never the checkout's var/; the processes it starts share it (the environment).
if "RECOMMENDER_CLICK_JOURNAL_DIR" not in os.environ:
    os.environ["RECOMMENDER_CLICK_JOURNAL_DIR"] = tempfile.mkdtemp(prefix="interlayer-clicks-")
RECOMMENDER_CLICK_JOURNAL_DIR = Path(os.environ["RECOMMENDER_CLICK_JOURNAL_DIR"])
