// Mapping pages: drag a card (a customer, a service) onto a drop zone (a PSA company, a
// product); the drop posts the card's map URL through htmx. People who do not drag use the
// "Map to…" search on each card.
function csrfToken() {
  return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];
}

function dropZone(event) {
  return event.target.closest && event.target.closest("[data-drop-field]");
}

document.addEventListener("dragstart", (event) => {
  const card = event.target.closest && event.target.closest("[data-map-url]");
  if (!card) return;
  event.dataTransfer.setData("text/plain", JSON.stringify({ url: card.dataset.mapUrl, target: `#${card.id}` }));
  event.dataTransfer.effectAllowed = "link";
});

document.addEventListener("dragover", (event) => {
  const zone = dropZone(event);
  if (!zone) return;
  event.preventDefault();
  zone.classList.add("drop-here");
});

document.addEventListener("dragleave", (event) => {
  const zone = dropZone(event);
  if (zone) zone.classList.remove("drop-here");
});

document.addEventListener("drop", (event) => {
  const zone = dropZone(event);
  if (!zone) return;
  event.preventDefault();
  zone.classList.remove("drop-here");
  let card;
  try {
    card = JSON.parse(event.dataTransfer.getData("text/plain"));
  } catch {
    return; // something else was dropped
  }
  htmx.ajax("POST", card.url, {
    target: card.target,
    swap: "outerHTML",
    values: { [zone.dataset.dropField]: zone.dataset.dropValue },
    headers: { "X-CSRFToken": csrfToken() },
  });
});
