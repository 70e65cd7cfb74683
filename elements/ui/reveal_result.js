// After Generate: bring the result (the before/after tab, above the tool panel on a phone) into view
// when it is scrolled out of sight. Runs in the browser as a Gradio event's `js`.
() => {
  const tabs = document.querySelector("#view-tabs");
  if (!tabs) return;
  const r = tabs.getBoundingClientRect();
  if (r.top < 0 || r.top > window.innerHeight * 0.5) tabs.scrollIntoView({ behavior: "smooth", block: "start" });
}
