// Typesets the formulas that pymdownx.arithmatex (generic mode) leaves in the page as
// \( ... \) and \[ ... \]; runs again on every page that instant navigation loads.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "$$", right: "$$", display: true },
      { left: "$", right: "$", display: false },
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
    throwOnError: false,
  });
});
