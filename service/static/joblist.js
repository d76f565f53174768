// The job list: GET /v1/jobs newest first, polled, with status, size and progress per job.

import { api } from "./api.js";
import { $, el, time } from "./dom.js";

const POLL_MS = 2500;
const PAGE = 25;

export class JobList {
  /** `onPick(id)` when a job is clicked; `onList(jobs)` after every refresh. */
  constructor(onPick, onList) {
    this.onList = onList;
    this.shown = PAGE;
    this.active = null;
    this.timer = null;
    this.latest = 0; // the number of the newest refresh: an older one's answer is stale
    this.answers = 0; // answers received, stale ones included (data-answers of the list)
    $("job-list").addEventListener("click", (event) => {
      const item = event.target.closest("li.job");
      if (item) onPick(item.dataset.id);
    });
    $("refresh-jobs").addEventListener("click", () => this.refresh());
    $("more-jobs").addEventListener("click", () => {
      this.shown += PAGE;
      this.refresh();
    });
  }

  /** Highlight job `id` (or none). */
  setActive(id) {
    this.active = id;
    for (const li of document.querySelectorAll("#job-list li.job")) li.classList.toggle("active", li.dataset.id === id);
  }

  /** Fetch and show the list now, then again every few seconds (less often when hidden). A
   * refresh overtaken by a newer one (a poll in flight when a job is cancelled) shows nothing:
   * its answer may predate the change the newer one was made for. */
  async refresh() {
    clearTimeout(this.timer);
    const number = ++this.latest;
    try {
      const { jobs, total } = await api(`/v1/jobs?limit=${this.shown}&offset=0`);
      $("job-list").dataset.answers = ++this.answers;
      if (number !== this.latest) return;
      this.render(jobs);
      $("more-jobs").hidden = !(total > jobs.length);
      $("more-jobs").textContent = `Show more (${jobs.length} of ${total})`;
      this.onList(jobs);
    } catch (err) {
      if (number !== this.latest) return;
      $("jobs-empty").textContent = `Job list unavailable: ${err.message}`;
      $("jobs-empty").hidden = false;
    }
    this.timer = setTimeout(() => this.refresh(), document.hidden ? 6 * POLL_MS : POLL_MS);
  }

  render(jobs) {
    $("jobs-empty").textContent = "No jobs yet.";
    $("jobs-empty").hidden = jobs.length > 0;
    const items = jobs.map((job) => {
      const [h, w] = job.shape || [0, 0];
      const size = `${w}×${h}${job.frames > 1 ? ` ×${job.frames}` : ""}`;
      return el(
        "li",
        {
          class: `job${job.id === this.active ? " active" : ""}`,
          dataset: { id: job.id, status: job.status },
          title: job.nanobragg || "",
        },
        el(
          "div",
          { class: "top" },
          el("span", { class: `dot ${job.status}` }),
          el("code", {}, job.id.slice(0, 8)),
          el("span", { class: "size" }, size),
          el("span", { class: "when muted" }, time(job.created)),
        ),
        el("div", { class: "args" }, job.nanobragg || "(typed job)"),
        el("div", { class: "mini" }, el("div", { style: `width: ${job.progress || 0}%` })),
      );
    });
    $("job-list").replaceChildren(...items);
  }
}
