"""Checks the built documentation site as a reader meets it: ``python tests/site_check.py SITE``.

``mkdocs build --strict`` validates the Markdown; this reads the HTML it wrote (standard
library ``html.parser`` only) and fails on what a browser would show wrong:

- an ``Examples:`` section of an API page without a code block before the next section
  or object (a docstring that mkdocstrings rendered as text or as nested quotes);
- literal Sphinx roles (``:func:``, ``:class:``, ``:mod:``, ``:meth:``, ``:math:`` ...)
  or directives (``.. math::``) in the text, which the site does not render;
- an internal link, image, script or stylesheet that points at no file of the site,
  or a link whose ``#anchor`` is not an ``id`` of its target page;
- a page with a formula (``class="arithmatex"``) that does not load KaTeX, its
  auto-render script and its stylesheet.

Exits with status 1 and one line per defect, or prints how many pages it checked.
"""

from __future__ import annotations

import html.parser
import pathlib
import re
import sys
import urllib.parse

ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc|ref|math|py:\w+):`"
                  r"|\.\. (?:math|note|warning|code-block)::")
MATH_FILES = ("katex.min.js", "auto-render.min.js", "katex.min.css")
# Elements whose text is code as typed, where a role could be quoted on purpose.
VERBATIM = {"pre", "script", "style"}


class Page(html.parser.HTMLParser):
  """What one HTML page holds: ids, references, Examples sections, roles, math."""

  def __init__(self):
    super().__init__(convert_charrefs=True)
    self.ids: set[str] = set()
    self.refs: list[tuple[str, str]] = []     # (tag.attribute, url)
    self.examples: list[str] = []             # tag that follows each "Examples:"
    self.roles: list[str] = []
    self.has_math = False
    self._verbatim = 0
    self._section_title = False
    self._pending_examples = False

  def handle_starttag(self, tag, attrs):
    a = dict(attrs)
    for key in ("id", "name"):
      if a.get(key) and (key == "id" or tag == "a"):
        self.ids.add(a[key])
    classes = (a.get("class") or "").split()
    if "arithmatex" in classes:
      self.has_math = True
    if tag in VERBATIM:
      self._verbatim += 1
    if self._pending_examples:   # a code block before the next section or object
      if tag == "pre" or (tag == "div" and "highlight" in classes):
        self.examples.append("code")
        self._pending_examples = False
      elif ("doc-section-title" in classes
            or tag in ("h1", "h2", "h3", "h4", "h5", "h6")):
        self.examples.append(f"no code block before the next <{tag}>")
        self._pending_examples = False
    if tag == "span" and "doc-section-title" in classes:
      self._section_title = True
    for attr in ("href", "src"):
      if a.get(attr) and tag in ("a", "img", "script", "link", "source"):
        if tag == "link" and "stylesheet" not in (a.get("rel") or "").split():
          continue
        self.refs.append((f"{tag}.{attr}", a[attr]))

  def handle_endtag(self, tag):
    if tag in VERBATIM and self._verbatim:
      self._verbatim -= 1
    if tag == "span":
      self._section_title = False

  def handle_data(self, data):
    if self._section_title and data.strip() in ("Examples:", "Example:"):
      self._pending_examples = True
    if not self._verbatim:
      self.roles.extend(m.group(0) for m in ROLE.finditer(data))

  def close(self):
    super().close()
    if self._pending_examples:
      self.examples.append("no code block before the end of the page")


def parse(text: str) -> Page:
  """Parses one page's HTML."""
  page = Page()
  page.feed(text)
  page.close()
  return page


def _target(site: pathlib.Path, page: pathlib.Path, url: str):
  """(file the URL names or None if external, fragment) for a reference on ``page``."""
  parts = urllib.parse.urlsplit(url)
  if parts.scheme or parts.netloc or url.startswith(("mailto:", "javascript:", "data:")):
    return None, ""
  path = urllib.parse.unquote(parts.path)
  if not path:
    return page, parts.fragment
  base = site if path.startswith("/") else page.parent
  target = (base / path.lstrip("/")).resolve()
  if target.is_dir() or path.endswith("/"):
    target = target / "index.html"
  return target, parts.fragment


def check_pages(site: pathlib.Path, pages: dict[pathlib.Path, Page]) -> list[str]:
  """Every defect of the parsed pages of ``site``, one line each."""
  site = site.resolve()
  defects = []
  for path, page in sorted(pages.items()):
    rel = path.relative_to(site).as_posix()
    for i, found in enumerate(page.examples):
      if found != "code":
        defects.append(f"{rel}: Examples section {i + 1} has {found}")
    for role in sorted(set(page.roles)):
      defects.append(f"{rel}: literal Sphinx role {role!r} in the text")
    loaded = set()
    for kind, url in page.refs:
      target, fragment = _target(site, path, url)
      if target is None:
        continue
      if site not in target.parents:
        defects.append(f"{rel}: {kind} {url!r} points outside the site")
        continue
      if not target.is_file():
        defects.append(f"{rel}: {kind} {url!r} has no file in the site")
        continue
      loaded.add(target.name)
      if fragment and target.suffix == ".html":
        ids = pages[target].ids if target in pages else set()
        if fragment not in ids:
          defects.append(f"{rel}: {kind} {url!r}: no id {fragment!r} in its page")
    if page.has_math:
      missing = [f for f in MATH_FILES if f not in loaded]
      if missing:
        defects.append(f"{rel}: has formulas but does not load {', '.join(missing)}")
  return defects


def check_site(site: pathlib.Path) -> tuple[int, list[str]]:
  """(pages checked, defects) of a built site directory."""
  site = pathlib.Path(site).resolve()
  pages = {p.resolve(): parse(p.read_text(encoding="utf-8"))
           for p in sorted(site.rglob("*.html"))}
  return len(pages), check_pages(site, pages)


def main(argv: list[str]) -> int:
  if len(argv) != 1:
    print("usage: python tests/site_check.py SITE_DIR", file=sys.stderr)
    return 2
  count, defects = check_site(pathlib.Path(argv[0]))
  if count == 0:
    print(f"no HTML pages under {argv[0]}", file=sys.stderr)
    return 1
  for line in defects:
    print(line)
  if defects:
    print(f"{len(defects)} defects in {count} pages", file=sys.stderr)
    return 1
  print(f"site check: {count} pages, no defects")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
