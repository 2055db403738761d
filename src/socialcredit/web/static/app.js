/* socialcredit lab: the what-if explorer (its form and a job's page) and the page dispatcher.
 *
 * Each page names itself in <body data-page="..."> and passes its data URLs in
 * <script type="application/json" id="page-data">; charts.js, loaded first, holds the
 * shared helpers and the charts of runs, citizens and sweeps.
 */
"use strict";

/* ---- the what-if form ------------------------------------------------------------------------------------- */

function whatifPage() {
  const pick = document.getElementById("scenario");
  if (pick) pick.addEventListener("change", () => pick.form.submit());
  const form = document.getElementById("whatif-form");
  if (!form) return;
  const clear = () => form.querySelectorAll(".field-error, .form-error").forEach((p) => {
    p.hidden = true; p.textContent = ""; const field = p.closest(".field"); if (field) field.classList.remove("invalid");
  });
  const show = (name, message) => {
    const target = document.getElementById("error-" + name) || document.getElementById("error-_form");
    target.textContent = target.id === "error-_form" && name !== "_form" ? `${name}: ${message}` : message;
    target.hidden = false;
    const field = target.closest(".field");
    if (field) field.classList.add("invalid");
  };
  form.addEventListener("reset", () => setTimeout(() => {
    clear();
    form.querySelectorAll("input[data-default]").forEach((input) => { input.value = input.dataset.default; });
  }, 0));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear();
    const button = document.getElementById("run-whatif");
    button.disabled = true;
    try {
      const body = new URLSearchParams(new FormData(form));
      const started = await getJSON("/api/whatif", { method: "POST", body });
      window.location.href = started.url;
    } catch (e) {
      if (e.status === 422 && e.body && e.body.errors) {
        Object.entries(e.body.errors).forEach(([name, message]) => show(name, message));
        const first = form.querySelector(".field.invalid input");
        if (first) first.focus();
      } else {
        show("_form", e.message);
      }
      button.disabled = false;
    }
  });
}

/* ---- a what-if job ---------------------------------------------------------------------------------------- */

function overlay(id, base, variant, columns, options) {
  const xb = days(base.columns), xv = days(variant.columns), traces = [];
  columns.forEach(([col, name, colour]) => {
    if (!(col in base.columns) || !(col in variant.columns)) return;
    traces.push({ x: xb, y: base.columns[col], name: `${name} (unchanged)`, type: "scatter", mode: "lines",
      legendgroup: col, line: { color: colour, dash: "dash", width: 1.5 } });
    traces.push({ x: xv, y: variant.columns[col], name: `${name} (changed)`, type: "scatter", mode: "lines",
      legendgroup: col, line: { color: colour, width: 2.5 } });
  });
  return plot(id, traces, Object.assign({ xaxis: { title: { text: "day" } }, height: 380 }, options));
}

async function drawJob(job, d) {
  const [base, variant] = await Promise.all([getJSON(d.base_metrics), getJSON(d.variant_metrics)]);
  const cmp = job.result.compare;
  const body = document.querySelector("#headline tbody");
  body.replaceChildren(...cmp.aggregate.map((r) => el("tr", { "data-measure": r.measure }, el("td", {}, r.measure),
    el("td", { class: "num" }, fmt(r.b)), el("td", { class: "num" }, fmt(r.a)), el("td", { class: "num" }, signed(r.difference)))));
  const lc = cmp.list_changes;
  document.getElementById("list-changes").textContent = `Black list: ${fmt(lc.black_in_a_only)} citizens only with the change, ` +
    `${fmt(lc.black_in_b_only)} only without it, ${fmt(lc.black_in_both)} in both.` + (cmp.notes.length ? " Note: " + cmp.notes.join("; ") : "");
  const chill = document.querySelector("#chilling tbody");
  chill.replaceChildren(...cmp.chilling.map((r) => el("tr", {}, el("td", {}, r.group), el("td", {}, r.type),
    el("td", { class: "num" }, fmt(r.acts_b)), el("td", { class: "num" }, fmt(r.acts_a)), el("td", { class: "num" }, signed(r.difference)))));
  const causes = [["blacklisted", "all causes", "#111111"]].concat(Object.keys(CAUSES).map((k) => ["black_by_" + k, "by " + CAUSES[k], CAUSE_COLOURS[k]]));
  overlay("chart-black", base, variant, causes, { title: { text: "The black list by cause" }, yaxis: { title: { text: "citizens" } } });
  const colours = gradeColours(base.meta);
  overlay("chart-grades", base, variant, base.meta.grades.map((g) => ["grade_" + g.name, "grade " + g.name, colours[g.name]]),
    { title: { text: "Citizens per grade" }, yaxis: { title: { text: "citizens" } } });
  overlay("chart-ties", base, variant, [["ties_cut_cum", "ties cut", "#542788"]], { title: { text: "Ties cut (cumulative)" }, yaxis: { title: { text: "ties" } } });
  overlay("chart-criticism", base, variant, base.meta.criticism.map((t, i) => ["acts_" + t, t.replaceAll("_", " "), PALETTE[i % PALETTE.length]]),
    { title: { text: "Criticism acts per scoring step" }, yaxis: { title: { text: "acts" } } });
  document.getElementById("results").dataset.ready = "1";
}

function jobPage(d) {
  const state = document.getElementById("job-state");
  const box = document.getElementById("progress-box"), bar = document.getElementById("progress");
  const stage = document.getElementById("stage"), errorBox = document.getElementById("job-error");
  const results = document.getElementById("results"), cancel = document.getElementById("cancel");
  const stages = { starting: "starting the run process", base: "the unchanged run", variant: "the changed run", compare: "comparing the two runs" };
  let drawn = false;
  function update(job) {
    state.dataset.status = job.status;
    if (job.status === "running") {
      box.hidden = false;
      bar.value = job.fraction || 0;
      stage.textContent = (stages[job.stage] || job.stage) + (job.days && job.stage !== "compare" ? `, day ${job.day} of ${job.days}` : "");
      return true;
    }
    box.hidden = true;
    if (job.status === "done") {
      results.hidden = false;
      if (!drawn) { drawn = true; drawJob(job, d).catch((e) => { errorBox.hidden = false; errorBox.textContent = "Could not draw the comparison: " + e.message; }); }
    } else {
      errorBox.hidden = false;
      errorBox.textContent = `This what-if ${job.status === "failed" ? "failed" : "was " + job.status}: ${job.error || ""}`;
    }
    return false;
  }
  async function poll() {
    try {
      const job = await getJSON(d.status);
      if (update(job)) setTimeout(poll, 400);
    } catch (e) { errorBox.hidden = false; errorBox.textContent = "Lost touch with the server: " + e.message; setTimeout(poll, 2000); }
  }
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try { update(await getJSON(d.cancel, { method: "POST" })); } catch (e) {
      errorBox.hidden = false; errorBox.textContent = e.message; cancel.disabled = false;
    }
  });
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page, d = pageData();
  if (page === "run") runPage(d);
  else if (page === "citizen") citizenPage(d);
  else if (page === "sweep") sweepPage(d);
  else if (page === "whatif") whatifPage();
  else if (page === "job") jobPage(d);
});
