// voicehooks inspector: optional enhancements. Every page works without this file.
"use strict";

// The list updates itself: the server says "a delivery arrived" and we fetch the new list.
// Streams are short (the server reconnects us every few seconds); each time the stream opens,
// the list is fetched again, so nothing that arrived in between is missed.
const calls = document.getElementById("calls");
if (calls && window.EventSource) {
  const refresh = async (fresh) => {
    const response = await fetch("/_voicehooks/fragment", { headers: { accept: "text/html" } });
    if (!response.ok) return;
    const focused = document.activeElement && document.activeElement.getAttribute("href");
    calls.innerHTML = await response.text();
    const row = fresh && calls.querySelector(`tr[data-id="${CSS.escape(fresh)}"]`);
    if (row) row.classList.add("fresh");
    if (focused) calls.querySelector(`a[href="${CSS.escape(focused)}"]`)?.focus();
  };
  let opened = false;
  const source = new EventSource("/_voicehooks/events");
  // The page says whether it is live (the stream is open), for people and for tests.
  source.addEventListener("open", () => {
    if (opened) refresh(null);  // a reconnection: catch up
    opened = true;
    document.body.dataset.live = "on";
  });
  source.addEventListener("error", () => { document.body.dataset.live = "off"; });
  source.addEventListener("delivery", (message) => refresh(message.data));
}

// Replay without leaving the page; the result is announced in the form's status output.
for (const form of document.querySelectorAll("form.replay")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const output = form.querySelector("output");
    const button = form.querySelector("button");
    button.disabled = true;
    output.textContent = "Replaying…";
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { accept: "application/json" },
      });
      const result = await response.json();
      if (!response.ok) {
        output.textContent = result.error;
        return;
      }
      output.innerHTML = "";
      const link = document.createElement("a");
      link.href = `/_voicehooks/deliveries/${result.id}`;
      link.textContent = `#${result.id}`;
      output.append("Replayed as ", link, `: ${result.status}`);
      if (result.duplicate) {
        output.append(" (duplicate: answered from the first delivery, the tool did not run again)");
      }
    } catch (error) {
      output.textContent = "The replay failed: is the server still running?";
    } finally {
      button.disabled = false;
    }
  });
}
