"""The built-site checker (tests/site_check.py) finds each defect it is meant to find.

Feeds it small hand-written pages (nothing is built): a correct page passes, and each
planted defect is reported once, naming the page.
"""

import pathlib

import site_check

MATH_HEAD = ('<link rel="stylesheet" href="../assets/katex/katex.min.css">'
             '<script src="../assets/katex/katex.min.js"></script>'
             '<script src="../assets/katex/contrib/auto-render.min.js"></script>')
EXAMPLES = ('<h2 id="jgen.f">f</h2><p><span class="doc-section-title">Examples:</span></p>'
            '<div class="highlight"><pre><code>&gt;&gt;&gt; f(1)</code></pre></div>')


def _site(tmp_path: pathlib.Path, pages: dict[str, str]) -> pathlib.Path:
  for rel, body in pages.items():
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
  for asset in ("assets/katex/katex.min.css", "assets/katex/katex.min.js",
                "assets/katex/contrib/auto-render.min.js", "figures/a.png"):
    (tmp_path / asset).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / asset).write_bytes(b"x")
  return tmp_path


def _good_pages() -> dict[str, str]:
  return {
      "index.html": '<a href="api/">API</a> <a href="guide/#rule">rule</a>',
      "api/index.html": EXAMPLES + '<a href="../guide/">guide</a>',
      "guide/index.html": (MATH_HEAD + '<h2 id="rule">Rule</h2>'
                           '<span class="arithmatex">\\(x\\)</span>'
                           '<figure><img src="../figures/a.png"></figure>'
                           '<a href="../api/#jgen.f">f</a>'
                           '<a href="https://example.org/x#y">out</a>'
                           '<pre><code>print(":func:`x`")</code></pre>'),
  }


def _defects(tmp_path, pages):
  count, defects = site_check.check_site(_site(tmp_path, pages))
  assert count == len(pages)
  return defects


def test_correct_site_passes(tmp_path):
  assert _defects(tmp_path, _good_pages()) == []


def test_examples_section_without_code_block(tmp_path):
  pages = _good_pages()
  pages["api/index.html"] = pages["api/index.html"].replace(
      '<div class="highlight"><pre><code>&gt;&gt;&gt; f(1)</code></pre></div>',
      '<blockquote><p>&gt;&gt;&gt; f(1)</p></blockquote><h2 id="g">g</h2>')
  defects = _defects(tmp_path, pages)
  assert len(defects) == 1 and defects[0].startswith("api/index.html: Examples section 1")


def test_examples_section_at_end_of_page_without_code(tmp_path):
  pages = _good_pages()
  pages["api/index.html"] = ('<h2 id="jgen.f">f</h2><p><span class="doc-section-title">'
                             'Examples:</span></p><p>f(1)</p>')
  defects = _defects(tmp_path, pages)
  assert len(defects) == 1 and "end of the page" in defects[0]


def test_literal_sphinx_role(tmp_path):
  pages = _good_pages()
  pages["api/index.html"] += ("<p>See :func:`jgen.qda` and :class:`Foo`, :math:`x^2`.</p>"
                              "<p>.. math:: \\frac{a}{b}</p>")
  defects = _defects(tmp_path, pages)
  assert len(defects) == 4 and all(d.startswith("api/index.html: literal") for d in defects)


def test_broken_link_image_and_anchor(tmp_path):
  pages = _good_pages()
  pages["index.html"] += ('<a href="missing/">x</a><img src="figures/none.png">'
                          '<a href="guide/#no-such-anchor">y</a>'
                          '<a href="../../outside.md">z</a>')
  defects = _defects(tmp_path, pages)
  assert len(defects) == 4 and all(d.startswith("index.html: ") for d in defects)
  assert any("no id 'no-such-anchor'" in d for d in defects)
  assert any("outside the site" in d for d in defects)


def test_formula_without_math_renderer(tmp_path):
  pages = _good_pages()
  pages["guide/index.html"] = pages["guide/index.html"].replace(MATH_HEAD, "")
  defects = _defects(tmp_path, pages)
  assert len(defects) == 1 and "does not load katex.min.js" in defects[0]


def test_main_exit_status(tmp_path, capsys):
  site = _site(tmp_path, _good_pages())
  assert site_check.main([str(site)]) == 0
  (site / "index.html").write_text('<a href="nowhere.html">x</a>')
  assert site_check.main([str(site)]) == 1
  assert "nowhere.html" in capsys.readouterr().out
