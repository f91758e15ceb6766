// Account mapping: drag a customer card onto a PSA company (native drag and drop), posted
// through htmx. People who do not drag use the "Map to…" search on each card.
function csrfToken() {
  return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];
}

document.addEventListener("dragstart", (event) => {
  const card = event.target.closest && event.target.closest(".account-card[draggable=true]");
  if (!card) return;
  event.dataTransfer.setData("text/plain", card.dataset.accountId);
  event.dataTransfer.effectAllowed = "link";
});

document.addEventListener("dragover", (event) => {
  const company = event.target.closest && event.target.closest(".company-drop");
  if (!company) return;
  event.preventDefault();
  company.classList.add("drop-here");
});

document.addEventListener("dragleave", (event) => {
  const company = event.target.closest && event.target.closest(".company-drop");
  if (company) company.classList.remove("drop-here");
});

document.addEventListener("drop", (event) => {
  const company = event.target.closest && event.target.closest(".company-drop");
  const accountId = event.dataTransfer.getData("text/plain");
  if (!company || !accountId) return;
  event.preventDefault();
  company.classList.remove("drop-here");
  htmx.ajax("POST", `/mapping/accounts/${accountId}/map/`, {
    target: `#account-${accountId}`,
    swap: "outerHTML",
    values: { company_id: company.dataset.companyId },
    headers: { "X-CSRFToken": csrfToken() },
  });
});
