"""Text an author writes in Markdown (a post's summary, a welcome step): safe HTML for mail, readable plain text."""
from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt

# What a mail may carry from an author's Markdown: structure, emphasis and links; no images, scripts or styles.
TAGS = {"p", "a", "em", "strong", "ul", "ol", "li", "br", "blockquote", "h1", "h2", "h3", "code", "pre", "hr"}
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_markdown_with_html = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})


def to_html(source: str | None, tags: set[str] = TAGS, with_html: bool = False) -> str:
    """Markdown rendered, then sanitised as a feed's HTML is: links keep only http, https and mailto.

    `with_html` keeps HTML written among the Markdown (then sanitised); otherwise it shows as typed.
    """
    return sanitise((_markdown_with_html if with_html else _markdown).render(normalised(source)), tags)


def sanitise(html: str, tags: set[str] = TAGS) -> str:
    return nh3.clean(html, tags=tags, attributes={"a": {"href"}, "*": set()},
                     url_schemes={"http", "https", "mailto"}).strip()


def to_text(source: str | None) -> str:
    """The plain-text part from the Markdown source: it reads as written, with links as "words (address)", no
    emphasis marks, and headings as lines of their own."""
    text = normalised(source)
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)                      # an image: its alt text
    text = re.sub(r"\[([^\]]+)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)",
                  lambda m: m[2] if m[1] == m[2] else f"{m[1]} ({m[2]})", text)
    text = re.sub(r"<(https?://[^>\s]+|mailto:[^>\s]+)>", r"\1", text)           # an autolink
    text = re.sub(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", r"\2", text)                 # bold
    text = re.sub(r"(?<![\w*])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*])", r"\2", text)  # italics
    text = re.sub(r"`([^`]+)`", r"\1", text)
    text = re.sub(r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$", r"\1", text, flags=re.M)    # a heading: its words
    text = re.sub(r"^ {0,3}\* ", "- ", text, flags=re.M)
    text = re.sub(r"  $", "", text, flags=re.M)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def leading_heading(source: str | None) -> tuple[str, str]:
    """A first line "# Title" apart from the rest: a mail shows it above the greeting."""
    text = normalised(source)
    match = re.match(r" {0,3}# +(.+?)[ \t]*#*[ \t]*(?:\n|$)", text)
    return (match[1], text[match.end():].lstrip("\n")) if match else ("", text)


def normalised(source: str | None) -> str:
    return (source or "").replace("\r\n", "\n").replace("\r", "\n").strip()
