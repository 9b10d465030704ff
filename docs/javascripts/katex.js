// Renders the math that pymdownx.arithmatex (generic mode) marks: \( \) inline, \[ \] display.
// Only .arithmatex elements are touched, so a "$" in prose or code is never math.
document$.subscribe(({ body }) => {
  for (const el of body.querySelectorAll(".arithmatex")) {
    if (el.dataset.rendered) continue;
    const tex = el.textContent.trim();
    const display = tex.startsWith("\\[");
    katex.render(tex.slice(2, -2), el, { displayMode: display, throwOnError: false });
    el.dataset.rendered = "1";
  }
});
