// Checkout page: counts down to the intent's expiry and follows its live status over
// server-sent events (GET /pay/{id}/events, pushed by the payment lifecycle). The page is
// complete without this script; it only keeps it current without a reload.
"use strict";
(function () {
  const main = document.getElementById("checkout");
  if (!main) return;
  const expires = Number(main.dataset.expires) * 1000;
  const countdown = document.getElementById("countdown");
  const pay = document.getElementById("pay");
  const status = document.getElementById("status");
  const title = document.getElementById("state-title");
  const detail = document.getElementById("state-detail");

  function tick() {
    if (!countdown) return;
    const left = Math.max(0, Math.floor((expires - Date.now()) / 1000));
    const m = Math.floor(left / 60);
    const s = left % 60;
    countdown.textContent = m + ":" + String(s).padStart(2, "0");
  }
  tick();
  let timer = setInterval(tick, 1000);

  function show(st) {
    document.body.dataset.state = st.state;
    status.dataset.state = st.state;
    title.textContent = st.title;
    detail.textContent = st.detail;
    pay.hidden = !st.payable;
    if (!st.payable && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  }

  if (typeof EventSource !== "function") return;
  const source = new EventSource(main.dataset.events);
  source.addEventListener("state", function (e) {
    try {
      show(JSON.parse(e.data));
    } catch (err) {
      // A malformed event changes nothing on the page.
    }
  });
  // EventSource reconnects by itself; the first event after a reconnect is the current state.
})();
