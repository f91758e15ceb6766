// TrueUp's own script. No inline scripts anywhere, so a strict Content Security Policy holds.
document.addEventListener("DOMContentLoaded", () => {
  // Close the account menu when clicking elsewhere.
  document.addEventListener("click", (event) => {
    document.querySelectorAll("details.menu[open]").forEach((menu) => {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
});
