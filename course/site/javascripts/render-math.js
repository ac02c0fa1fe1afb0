// Typesets the notebooks' LaTeX with KaTeX, served with the site (no CDN). mkdocs-jupyter
// loads this file where it would load MathJax (its custom_mathjax_url); the KaTeX scripts come
// later in the page (mkdocs.yml extra_javascript), so typesetting waits for the load event.
window.addEventListener("load", function () {
  renderMathInElement(document.body, {
    delimiters: [
      { left: "$$", right: "$$", display: true },
      { left: "$", right: "$", display: false },
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
    throwOnError: false,
  });
});
