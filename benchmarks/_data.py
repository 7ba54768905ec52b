"""Benchmark vectors at scale: real embeddings of generated questions, and vectors drawn around them.

Two ways of drawing more vectors than can be embedded on 2 cores (about 270 texts/s here):

- ``interpolated``: a point on the segment between a real embedding and one of its 10 nearest real
  neighbours, plus a little noise (0.003 per dimension, cosine ~0.998), renormalised. The drawn
  vectors stay on the real data's local structure (its neighbourhoods are low-dimensional: 10 of 20
  neighbours' principal components carry ~87% of their variance), so they cluster like real data.
- ``isotropic``: a real embedding plus Gaussian noise in all 384 dimensions (0.02 per dimension,
  cosine ~0.93 to the centre, ~0.87 between two copies of one centre). Every copy is closer to its
  centre than to any other copy, a hub-and-spoke shape real text does not make; HNSW's neighbour
  heuristic then links copies only through the centre, whose in-links are capped at 2*M, so once a
  centre has more than 2*M copies the rest cannot be reached. Kept as a stress case.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import numpy as np

FRAMES = [
    "How do I {a} {s}{c}?", "What is the fastest way to {a} {s}{c}?", "Can you help me {a} {s}{c}?",
    "Why can't I {a} {s}{c}?", "Is it possible to {a} {s}{c}?", "Steps to {a} {s}{c}",
    "How long does it take to {a} {s}{c}?", "Who is allowed to {a} {s}{c}?",
    "What happens if I {a} {s}{c}?", "Do I need admin rights to {a} {s}{c}?",
    "I keep failing to {a} {s}{c}, what am I doing wrong?", "Is there a shortcut to {a} {s}{c}?",
    "Does it cost anything to {a} {s}{c}?", "Where is the option to {a} {s}{c}?",
    "Should I {a} {s}{c} or wait?", "Explain how to {a} {s}{c}",
    "What are the risks when you {a} {s}{c}?", "Give me a checklist to {a} {s}{c}",
    "Can a script {a} {s}{c}?", "What's the difference between trying to {a} {s} and asking support{c}?",
]  # fmt: skip
ACTIONS = [
    "reset", "cancel", "update", "find", "delete", "renew", "export", "fix", "configure", "download",
    "recover", "share", "merge", "restart", "verify", "translate", "back up", "restore", "migrate",
    "rename", "archive", "encrypt", "audit", "transfer", "upgrade", "downgrade", "pause", "schedule",
    "monitor", "debug", "install", "uninstall", "sync", "rotate", "revoke", "approve", "split",
    "compress", "import", "print",
]  # fmt: skip
SUBJECTS = [
    "my password", "the invoice", "a refund", "my subscription", "the API key", "two-factor login",
    "the mobile app", "a Python list", "a git branch", "the router", "my order", "the printer",
    "a docker container", "the database backup", "an SSL certificate", "my account email",
    "the shipping address", "a gift card", "the VPN profile", "my calendar", "the team workspace",
    "a pull request", "the billing plan", "a Kubernetes pod", "the DNS record", "my phone number",
    "a shared folder", "the payroll report", "a customer ticket", "the firewall rule",
    "my loyalty points", "a webhook", "the CI pipeline", "an S3 bucket", "the user roles",
    "a spreadsheet", "the wifi password", "my profile photo", "the support chat history",
    "a cron job", "the mailing list", "a PDF contract", "the order history", "a Slack integration",
    "the tax settings", "a virtual machine", "the log files", "my bank card", "a domain name",
    "the product catalogue", "an expense claim", "the onboarding checklist", "a meeting recording",
    "the SSH keys", "my delivery slot", "the audit trail", "a Postgres replica", "the app cache",
    "my saved searches", "the warranty claim",
]  # fmt: skip
CONTEXTS = [
    "", "", "", " on a weekend", " from my phone", " without losing data", " for a team of ten",
    " after the last update", " in the EU region", " while travelling", " on Windows", " on a Mac",
    " on Linux", " before the end of the month", " for a new employee", " in bulk",
    " using the API", " from the command line", " without admin access", " for a closed account",
    " twice in one day", " in another language", " for a client", " after a failed payment",
    " during an outage", " with two-factor turned on", " on the free plan", " on the enterprise plan",
]  # fmt: skip


def support_questions(n: int, seed: int = 5) -> list[str]:
    """n distinct generated support questions (up to about 1.3 million are possible)."""
    rng = random.Random(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        text = rng.choice(FRAMES).format(
            a=rng.choice(ACTIONS), s=rng.choice(SUBJECTS), c=rng.choice(CONTEXTS)
        )
        out[text] = None
    return list(out)


def real_embeddings(n: int) -> tuple[list[str], np.ndarray, float]:
    """Real all-MiniLM-L6-v2 embeddings of n generated questions, and the rate they were embedded at
    (kept in the temp dir between runs: embedding 100k texts takes ~6 minutes here)."""
    import semcache

    texts = support_questions(n)  # a prefix of any longer list: the same seed, the same draws
    folder = Path(tempfile.gettempdir())
    for saved in sorted(folder.glob("semcache-bench-questions-*.npz")):
        if int(saved.stem.rsplit("-", 1)[1]) >= n:
            data = np.load(saved)
            return texts, data["vectors"][:n], float(data["rate"])
    saved = folder / f"semcache-bench-questions-{n}.npz"
    embedder = semcache.SentenceTransformerEmbedder(threads=2)
    embedder.embed(texts[:8])
    start = time.perf_counter()
    vectors = np.vstack([embedder.embed(texts[lo : lo + 4096]) for lo in range(0, n, 4096)])
    rate = n / (time.perf_counter() - start)
    np.savez(saved, vectors=vectors.astype(np.float32), rate=rate)
    return texts, vectors.astype(np.float32), rate


def normalised(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def near(vectors: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Each vector plus Gaussian noise in every dimension, renormalised: a near-duplicate of it
    (noise 0.008 per dimension: cosine ~0.988 to its source)."""
    return normalised(vectors + rng.normal(0, noise, vectors.shape))


def isotropic(centres: np.ndarray, n: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    """n vectors: random centres plus Gaussian noise in every dimension, renormalised."""
    return near(centres[rng.integers(0, len(centres), n)], rng, noise)


def nearest(vectors: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """Each row's k nearest other rows by cosine (brute force, in chunks)."""
    out = np.empty((len(vectors), k), dtype=np.int64)
    for lo in range(0, len(vectors), chunk):
        sims = vectors[lo : lo + chunk] @ vectors.T
        sims[np.arange(len(sims)), np.arange(lo, lo + len(sims))] = -np.inf
        out[lo : lo + chunk] = np.argpartition(-sims, k, axis=1)[:, :k]
    return out


def interpolated(
    centres: np.ndarray, n: int, rng: np.random.Generator, k: int = 10, noise: float = 0.003
) -> np.ndarray:
    """n vectors on segments between real embeddings and their k nearest real neighbours."""
    neighbours = nearest(centres, k)
    picks = rng.integers(0, len(centres), n)
    other = neighbours[picks, rng.integers(0, k, n)]
    t = rng.random((n, 1), dtype=np.float32)
    rows = centres[picks] * (1 - t) + centres[other] * t
    return normalised(rows + rng.normal(0, noise, rows.shape))


def drawn(
    centres: np.ndarray, n: int, rng: np.random.Generator, how: str = "interpolated"
) -> np.ndarray:
    """n vectors drawn around the centres ``how``: "interpolated" or "isotropic"."""
    if n <= 0:
        return np.empty((0, centres.shape[1]), dtype=np.float32)
    if how == "interpolated":
        return interpolated(centres, n, rng)
    if how == "isotropic":
        return isotropic(centres, n, rng, noise=0.02)
    raise ValueError(f"unknown drawing {how!r}")
