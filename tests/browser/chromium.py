"""How this project starts Debian's Chromium (no Django here: benchmarks import it too)."""

# The flags this machine needs: no sandbox as root, no GPU, and no background networking
# (its connections are refused here and would only slow start-up).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
