// Review page: "Select page" ticks every card checkbox of the bulk form.
document.addEventListener("change", (event) => {
  if (!event.target.matches("[data-select-all]")) return;
  document
    .querySelectorAll('input[name="ids"][form="bulk-form"]')
    .forEach((box) => { box.checked = event.target.checked; });
});
